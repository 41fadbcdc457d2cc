"""The staff roles (最小权限): each group holds exactly the permissions its job needs.

The data migration oms/migrations/0001_staff_roles.py writes these groups; a later change
to the matrix needs a new migration that calls `sync_roles` again. The services check the
sensitive verbs themselves (a missing permission is `permission_denied`), so a permission
given by hand to a user works the same way as one given through a group. The README's
permission matrix and tests/oms/test_roles.py walk this table.
"""

from __future__ import annotations

# Read-only basics every order-facing role needs to find an order and read its timeline.
ORDER_READ = ["orders.view_order", "orders.view_orderline", "orders.view_orderevent", "orders.view_ordermemo"]

CUSTOMER_SERVICE = [
    *ORDER_READ,
    "orders.change_order",  # the order page's buttons; each verb below is checked in its service
    "orders.cancel_order",
    "orders.confirm_cod",
    "orders.complete_order",
    "orders.change_address",
    "orders.review_order",
    "orders.view_customer_pii",
    "orders.add_ordermemo",
    "orders.hold_order",
    "orders.add_manual_order",
    "orders.view_customerriskflag",
    "orders.change_customerriskflag",
    "orders.clear_riskflag",
    "orders.view_coupon",
    "inventory.view_sku",
    "inventory.view_stocklevel",
    "payments.view_payment",
    "payments.view_refund",
    "reminders.view_reminder",
    "reminders.view_manualreminder",
    "reminders.add_manualreminder",
    "reminders.view_report",
    "reminders.view_customercontactpreference",
    "reminders.add_customercontactpreference",
    "reminders.change_customercontactpreference",
    *[f"fulfillment.view_{m}" for m in ("shipment", "shipmentline", "trackingevent", "logisticsexception")],
    "fulfillment.change_logisticsexception",
    "fulfillment.resolve_exception",
    "fulfillment.merge_shipment",
    "aftersales.view_aftersale",
    "aftersales.view_aftersaleline",
    "aftersales.change_aftersale",
    "aftersales.approve_aftersale",
    "aftersales.open_aftersale",
]

FULFILLMENT_READ = [
    *[f"fulfillment.view_{m}" for m in ("shipment", "shipmentline", "trackingevent", "logisticsexception", "pickwave")],
]

WAREHOUSE = [
    *ORDER_READ,
    "orders.change_order",
    "orders.ship_order",
    "orders.add_ordermemo",
    "inventory.view_sku",
    "inventory.view_warehouse",
    "inventory.view_stocklevel",
    "inventory.add_stocklevel",
    "inventory.change_stocklevel",
    "inventory.adjust_stock",
    "inventory.view_stockmovement",
    "inventory.view_reservation",
    *FULFILLMENT_READ,
    "fulfillment.change_shipment",
    "fulfillment.pick_shipment",
    "fulfillment.merge_shipment",
    "fulfillment.correct_tracking",
    "fulfillment.import_shipments",
    "fulfillment.add_pickwave",
    "fulfillment.view_trackingpush",
    "fulfillment.view_trackingsubscription",
    "aftersales.view_aftersale",
    "aftersales.view_aftersaleline",
    "aftersales.change_aftersale",
    "aftersales.inspect_aftersale",
]

FINANCE = [
    *ORDER_READ,
    "orders.change_order",
    "orders.review_order",  # large-amount and payment-risk orders wait for finance in 已付款
    "orders.add_ordermemo",
    "payments.view_payment",
    "payments.view_paymentnotification",
    "payments.view_refund",
    "payments.change_refund",
    "payments.approve_refund",
    "payments.record_offline_payment",
    "payments.view_banktransfer",
    "payments.add_banktransfer",
    "payments.view_reconciliationcase",
    "payments.change_reconciliationcase",
    "payments.view_statementimport",
    "payments.add_statementimport",
    "payments.view_statementline",
    "fulfillment.view_shipment",
    "fulfillment.view_shipmentline",
    "aftersales.view_aftersale",
    "aftersales.view_aftersaleline",
]

OPERATIONS = [
    *ORDER_READ,
    "orders.view_storefront",
    "orders.view_coupon",
    "orders.add_coupon",
    "orders.change_coupon",
    "inventory.view_sku",
    "inventory.add_sku",
    "inventory.change_sku",
    "inventory.view_stocklevel",
    "reminders.view_reminderrule",
    "reminders.add_reminderrule",
    "reminders.change_reminderrule",
    "reminders.view_reminder",
    "reminders.view_manualreminder",
    "reminders.view_report",
    "reminders.view_customercontactpreference",
    "django_celery_beat.view_periodictask",
    "django_celery_beat.change_periodictask",
    "inventory.view_warehouse",
    "inventory.change_warehouse",  # covered provinces and priority steer allocation
    *FULFILLMENT_READ,
]

# 主管 are the second reviewers of manual orders (003 §2.1.3 双人复核).
SUPERVISOR_ONLY = ["orders.view_piiaccess", "aftersales.approve_large_aftersale", "orders.review_manual_order"]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    "客服": CUSTOMER_SERVICE,
    "仓储": WAREHOUSE,
    "财务": FINANCE,
    "运营": OPERATIONS,
    # 主管: every role's work, plus reading who looked at customers' personal data.
    "主管": sorted({*CUSTOMER_SERVICE, *WAREHOUSE, *FINANCE, *OPERATIONS, *SUPERVISOR_ONLY}),
}


def sync_roles(apps, schema_editor=None) -> None:
    """Create or update the groups to hold exactly ROLE_PERMISSIONS (used by the migrations)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        # Inside a migration the permissions do not exist yet (post_migrate makes them later);
        # create_permissions skips app configs without a models module, as historical ones are.
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True
        try:
            create_permissions(app_config, apps=apps, verbosity=0)
        finally:
            app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, dotted in ROLE_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=name)
        wanted = [tuple(p.split(".")) for p in dotted]
        perms = [Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in wanted]
        group.permissions.set(perms)
