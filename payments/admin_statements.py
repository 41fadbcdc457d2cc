"""对账单 in the admin: upload a gateway bill, then read what it matched and what it did not.

Registers StatementImport on the default admin site when imported; payments/admin.py
imports it (`from . import admin_statements  # noqa: F401`). Imports are never edited
or deleted here: the numbers are the record of what the gateway said on that day.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from oms.admin_base import ReadOnlyInline

from .models import GATEWAY_CHANNELS, ReconciliationCase, StatementImport, StatementLine
from .reconciliation import StatementUnreadable, statement_import, statement_report

RESULT_LABELS = {
    **{value: label for value, label in StatementLine.Result.choices},
    "missing_at_gateway": _("渠道缺失"),
    "bad_row": _("无法解析"),
}
KIND_LABELS = dict(StatementLine.Kind.choices)


class StatementUploadForm(forms.Form):
    channel = forms.ChoiceField(label=_("渠道"), choices=[(c.value, c.label) for c in GATEWAY_CHANNELS])
    file = forms.FileField(label=_("对账单文件"), help_text=_("CSV 文件，UTF-8 或 GBK 编码"))


class StatementLineInline(ReadOnlyInline):
    """Only the lines that did not match: a day's bill can have tens of thousands of matched ones."""

    model = StatementLine
    fields = ["kind", "out_trade_no", "gateway_trade_no", "amount", "occurred_at", "result"]
    readonly_fields = fields
    verbose_name_plural = _("不一致的对账单明细")

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).exclude(result=StatementLine.Result.MATCHED).order_by("pk")


class StatementImportAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "channel",
        "file_name",
        "lines_total",
        "matched",
        "missing_here",
        "missing_at_gateway",
        "amount_differs",
        "imported_by",
    ]
    list_filter = ["channel"]
    search_fields = ["file_name", "file_sha256"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["channel", "file_name", "file_sha256", "imported_by", "created_at"]}),
        (_("账期"), {"fields": ["period_start", "period_end"]}),
        (
            _("核对结果"),
            {"fields": ["lines_total", "matched", "missing_here", "missing_at_gateway", "amount_differs"]},
        ),
        (_("差异（每处一张复核单）"), {"fields": ["discrepancy_table"]}),
    ]
    readonly_fields = [
        "channel",
        "file_name",
        "file_sha256",
        "imported_by",
        "created_at",
        "period_start",
        "period_end",
        "lines_total",
        "matched",
        "missing_here",
        "missing_at_gateway",
        "amount_differs",
        "discrepancy_table",
    ]
    inlines = [StatementLineInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.add_statementimport")

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        upload = path(
            "upload/",
            self.admin_site.admin_view(self.upload_view),
            name="payments_statementimport_upload",
        )
        return [upload, *super().get_urls()]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        """The changelist's add button: an import is only ever created by uploading a bill."""
        return HttpResponseRedirect(reverse("admin:payments_statementimport_upload"))

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        """上传对账单: one call to statement_import, then to the new import's report."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                statement = statement_import(
                    channel=form.cleaned_data["channel"],
                    file=upload,
                    file_name=upload.name,
                    imported_by=request.user.get_username(),
                )
            except StatementUnreadable as err:
                form.add_error("file", err.message)
            else:
                self.message_user(
                    request,
                    _("已导入 %(n)s 行：一致 %(m)s，我方缺失 %(h)s，渠道缺失 %(g)s，金额不符 %(d)s")
                    % {
                        "n": statement.lines_total,
                        "m": statement.matched,
                        "h": statement.missing_here,
                        "g": statement.missing_at_gateway,
                        "d": statement.amount_differs,
                    },
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:payments_statementimport_change", args=[statement.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("上传对账单"),
            "form": form,
        }
        return TemplateResponse(request, "admin/payments/statementimport/upload.html", context)

    @admin.display(description=_("差异明细"))
    def discrepancy_table(self, obj: StatementImport) -> str:
        report = statement_report(obj)
        if not report["discrepancies"]:
            return _("无差异")
        header = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("结果"),
            _("类型"),
            _("商户单号"),
            _("渠道交易号"),
            _("我方金额"),
            _("渠道金额"),
            _("行号"),
            _("复核单"),
        )
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href="{}">#{} {}</a></td></tr>',
            (
                (
                    RESULT_LABELS.get(item["result"], item["result"]),
                    KIND_LABELS.get(item["kind"], "-"),
                    item["out_trade_no"] or "-",
                    item["trade_no"] or "-",
                    "-" if item["our_amount"] is None else item["our_amount"],
                    "-" if item["their_amount"] is None else item["their_amount"],
                    item["row"] or "-",
                    reverse("admin:payments_reconciliationcase_change", args=[item["case_id"]]),
                    item["case_id"],
                    ReconciliationCase.Status(item["case_status"]).label,
                )
                for item in report["discrepancies"]
            ),
        )
        return format_html("<table><thead>{}</thead><tbody>{}</tbody></table>", header, rows)


admin.site.register(StatementImport, StatementImportAdmin)
