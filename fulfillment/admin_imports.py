class ShipmentImportAdminMixin:
    """Filled in by the import work."""
