"""The admin upload for batch ship (批量导入发货): a mixin for the Shipment admin.

fulfillment/admin.py's ShipmentAdmin includes ShipmentImportAdminMixin; it adds
`<shipment admin>/import/` (URL name `admin:fulfillment_shipment_import`), a form for a CSV or
XLSX file and a table of per-row results, failures first. The page only renders and confirms:
each row is one call to fulfillment.imports.shipments_import with the acting staff user, so
the permission checks and the timeline come from the services. It needs
`fulfillment.import_shipments` (and shipping itself needs `orders.ship_order`).
"""

from __future__ import annotations

from collections import Counter

from django import forms
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from oms.errors import ValidationFailed
from orders.events import Actor

from .imports import COLUMN_ALIASES, RowStatus, shipment_rows_read, shipments_import

IMPORT_PERMISSION = "fulfillment.import_shipments"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# Rows ship one by one inside the request (tens of ms each, see bench/ship.py); a bigger file
# belongs to `manage.py import_shipments`, which has no request timeout.
ADMIN_MAX_ROWS = 2000


class ShipmentImportForm(forms.Form):
    file = forms.FileField(
        label=_("发货文件"),
        help_text=_("CSV 或 XLSX；第一行为列名：shipment_no（或 order_no）、carrier、tracking_no"),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("文件超过 10 MB，请分批导入或使用 manage.py import_shipments"))
        try:
            self.rows = shipment_rows_read(upload, name=upload.name)
        except ValidationFailed as error:
            raise forms.ValidationError([m for ms in (error.fields or {}).values() for m in ms]) from error
        if len(self.rows) > ADMIN_MAX_ROWS:
            raise forms.ValidationError(
                _("文件有 %(n)d 行，网页上传最多 %(max)d 行；请分批上传或使用 manage.py import_shipments")
                % {"n": len(self.rows), "max": ADMIN_MAX_ROWS}
            )
        return upload


class ShipmentImportAdminMixin:
    """Mix into the Shipment ModelAdmin (before admin.ModelAdmin)."""

    import_template = "admin/fulfillment/shipment_import.html"

    @property
    def import_url_name(self) -> str:
        return f"{self.model._meta.app_label}_{self.model._meta.model_name}_import"

    def get_urls(self):
        own = [path("import/", self.admin_site.admin_view(self.import_view), name=self.import_url_name)]
        return own + super().get_urls()

    def has_import_permission(self, request) -> bool:
        return request.user.has_perm(IMPORT_PERMISSION)

    def changelist_view(self, request, extra_context=None):
        """Offers the upload to those who may use it: `shipment_import_url` in the context."""
        extra_context = dict(extra_context or {})
        if self.has_import_permission(request):
            extra_context["shipment_import_url"] = reverse(
                f"admin:{self.import_url_name}", current_app=self.admin_site.name
            )
        return super().changelist_view(request, extra_context=extra_context)

    def import_view(self, request):
        if not self.has_import_permission(request):
            raise PermissionDenied
        form = ShipmentImportForm(request.POST or None, request.FILES or None)
        results = None
        if request.method == "POST" and form.is_valid():
            results = shipments_import(rows=form.rows, actor=Actor.staff(request.user))
        counts = Counter(result.status for result in results or [])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("批量导入发货"),
            "form": form,
            "results": results,
            "failed": [r for r in results or [] if r.status == RowStatus.ERROR],
            "counts": {
                "ok": counts[RowStatus.OK],
                "unchanged": counts[RowStatus.UNCHANGED],
                "error": counts[RowStatus.ERROR],
            },
            "columns": COLUMN_ALIASES,
        }
        return TemplateResponse(request, self.import_template, context)
