"""Test-only URLs: the real project, plus a throwaway admin site whose Shipment admin has only the
import mixin (fulfillment/admin.py, written elsewhere, includes the same mixin)."""

from django.contrib import admin
from django.urls import path

from fulfillment.admin_imports import ShipmentImportAdminMixin
from fulfillment.models import Shipment
from oms.urls import urlpatterns as project_urlpatterns

site = admin.AdminSite(name="importadmin")


@admin.register(Shipment, site=site)
class ImportOnlyShipmentAdmin(ShipmentImportAdminMixin, admin.ModelAdmin):
    pass


urlpatterns = [*project_urlpatterns, path("import-admin/", site.urls)]
