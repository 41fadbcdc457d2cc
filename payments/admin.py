"""Finance's side of the admin: payments, the notify inbox, refunds (approval needs its
own permission), bank transfers and the reconciliation queue. Nothing can be deleted,
and every write goes through payments.services.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from console.exports import MaskedExportMixin, RefundExport
from oms.admin_base import ReadOnlyAdmin, run_for_each

from . import services
from .models import BankTransfer, Payment, PaymentNotification, ReconciliationCase, Refund


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ["out_trade_no", "order", "channel", "amount", "status", "gateway_trade_no", "paid_at", "created_at"]
    list_filter = ["channel", "status"]
    search_fields = ["out_trade_no", "gateway_trade_no", "order__order_no"]
    list_select_related = ["order"]
    actions = ["sync_with_gateway"]

    @admin.action(description=_("向渠道查单（补单）"))
    def sync_with_gateway(self, request, queryset):
        for payment in queryset.select_related("order"):
            report = services.payment_sync(order=payment.order, close_unpaid=False)
            self.message_user(request, f"{payment.out_trade_no}: {report}")

    def has_sync_with_gateway_permission(self, request) -> bool:
        return request.user.has_perm("payments.view_payment")


@admin.register(PaymentNotification)
class PaymentNotificationAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "channel",
        "kind",
        "dedupe_key",
        "out_trade_no",
        "verified",
        "outcome",
        "outcome_note",
    ]
    list_filter = ["channel", "outcome", "verified", "kind"]
    search_fields = ["dedupe_key", "out_trade_no"]


@admin.register(Refund)
class RefundAdmin(MaskedExportMixin, ReadOnlyAdmin):
    resource_classes = [RefundExport]
    export_select_related = ("order",)
    list_display = [
        "out_refund_no",
        "order",
        "amount",
        "status",
        "reason",
        "requested_by",
        "approved_by",
        "attempts",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["out_refund_no", "order__order_no"]
    list_select_related = ["order", "approved_by"]
    actions = ["approve", "retry", "mark_paid_by_hand"]

    def _for_each_refund(self, request, refunds, service, done_message: str) -> None:
        run_for_each(
            self,
            request,
            refunds,
            lambda refund: service(refund=refund, user=request.user),
            done_message=done_message,
            label=lambda refund: refund.out_refund_no,
        )

    @admin.action(description=_("审批退款"), permissions=["approve"])
    def approve(self, request, queryset):
        """Money leaves: first a page that lists what will go back, to whom and how, then 确认审批."""
        if request.POST.get("confirm") != "yes":
            refunds = list(queryset.select_related("order", "payment").order_by("pk"))
            return TemplateResponse(
                request,
                "admin/payments/refund/approve_confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "title": _("确认审批退款"),
                    "opts": self.model._meta,
                    "refunds": refunds,
                    "total": sum((r.amount for r in refunds), Decimal("0.00")),
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        self._for_each_refund(request, queryset, services.refund_approve, _("已审批 %(n)d 笔退款，将原路退回"))

    @admin.action(description=_("重试失败的退款（同一退款单号）"), permissions=["approve"])
    def retry(self, request, queryset):
        self._for_each_refund(request, queryset, services.refund_retry, _("已重新提交 %(n)d 笔退款"))

    @admin.action(description=_("线下已退款（对公转账/货到付款）"), permissions=["approve"])
    def mark_paid_by_hand(self, request, queryset):
        refunds = queryset.select_related("payment")
        self._for_each_refund(request, refunds, services.refund_mark_paid_by_hand, _("已标记 %(n)d 笔退款为线下已退"))

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("payments.approve_refund")


class BankTransferForm(forms.ModelForm):
    class Meta:
        model = BankTransfer
        fields = ["payer", "amount", "remark", "received_at", "bank_reference"]


@admin.register(BankTransfer)
class BankTransferAdmin(admin.ModelAdmin):
    form = BankTransferForm
    list_display = ["received_at", "payer", "amount", "remark", "status", "payment", "recorded_by"]
    list_filter = ["status"]
    search_fields = ["payer", "remark", "bank_reference"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        transfer = services.bank_transfer_record(user=request.user, **form.cleaned_data)
        obj.pk = transfer.pk
        level = messages.SUCCESS if transfer.status == BankTransfer.Status.MATCHED else messages.WARNING
        self.message_user(request, transfer.get_status_display(), level=level)


@admin.register(ReconciliationCase)
class ReconciliationCaseAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "type",
        "status",
        "summary",
        "order",
        "out_trade_no",
        "expected_amount",
        "actual_amount",
        "assignee",
    ]
    list_filter = ["status", "type", "channel"]
    search_fields = ["out_trade_no", "order__order_no", "summary"]
    list_select_related = ["order", "assignee"]
    readonly_fields = [
        "type",
        "dedupe_key",
        "channel",
        "order",
        "payment",
        "refund",
        "notification",
        "out_trade_no",
        "expected_amount",
        "actual_amount",
        "summary",
        "data",
        "created_at",
        "resolved_at",
    ]
    fields = ["status", "assignee", "resolution", "note", *readonly_fields]
    actions = ["assign_to_me"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("分配给我"))
    def assign_to_me(self, request, queryset):
        services.cases_assign(cases=queryset, user=request.user)

    def save_model(self, request, obj, form, change):
        services.case_review_save(case=obj)


from . import admin_statements  # noqa: E402,F401  (registers the statement import admin and its upload page)
