"""Admin for customer service. Transition buttons come from django-fsm-2's FSMAdminMixin,
but every button runs the matching service (lock, transition, event, side effects)
instead of calling the model method directly. Nothing can be deleted.
"""

from __future__ import annotations

import json
import re

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_fsm.admin import FSMAdminMixin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from aftersales.admin import OrderAftersaleInline
from console.exports import MaskedExportMixin, OrderExport
from fulfillment.admin import shipments_table_for
from oms.admin_base import EstimatedCountPaginator, NoDeleteMixin, ReadOnlyAdmin, ReadOnlyInline, run_for_each
from oms.errors import DomainError
from payments.models import Payment, Refund
from reminders.admin import reminder_links_for
from workflows.cancellation import order_cancel

from . import services
from .admin_console import OrderConsoleMixin
from .models import (
    ActorKind,
    Coupon,
    CustomerRiskFlag,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    PiiAccess,
    Storefront,
    StorefrontAPIKey,
)
from .pii import mask_address, mask_mobile
from .risk import customer_risk_clear
from .timeline import KIND_OF_TYPE, event_kind, event_sentence
from .timeline import Kind as TimelineKind

# The library's own key model is not used: every key here belongs to a storefront.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = [
        "sku_code",
        "name",
        "spec",
        "unit_price",
        "quantity",
        "line_total",
        "discount",
    ]
    readonly_fields = fields


class OrderEventInline(ReadOnlyInline):
    """The timeline as a person reads it: one sentence per event, filterable by kind (?timeline=
    money / fulfillment / messages / staff), the raw data folded away one click from view."""

    model = OrderEvent
    verbose_name_plural = _("时间线")
    template = "admin/orders/order/timeline_inline.html"
    fields = ["created_at", "kind", "sentence", "status_change", "raw"]
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def get_queryset(self, request):
        events = super().get_queryset(request).select_related("actor_user")
        kind = request.GET.get("timeline", "")
        if kind == TimelineKind.STAFF:
            return events.filter(actor_kind=ActorKind.STAFF)
        types = [t for t, k in KIND_OF_TYPE.items() if k == kind]
        return events.filter(type__in=types) if types else events

    @admin.display(description=_("类别"))
    def kind(self, event: OrderEvent) -> str:
        return str(dict(TimelineKind.choices).get(event_kind(event), ""))

    @admin.display(description=_("事件"))
    def sentence(self, event: OrderEvent) -> str:
        return event_sentence(event)

    @admin.display(description=_("状态"))
    def status_change(self, event: OrderEvent) -> str:
        if event.from_status and event.to_status and event.from_status != event.to_status:
            return f"{OrderStatus(event.from_status).label} → {OrderStatus(event.to_status).label}"
        return ""

    @admin.display(description=_("原始数据"))
    def raw(self, event: OrderEvent) -> SafeString:
        body = json.dumps(event.data, ensure_ascii=False, indent=1, default=str)
        return format_html(
            "<details><summary>{}</summary><pre style='white-space:pre-wrap;margin:0'>{}</pre></details>",
            gettext("查看"),
            f"{event.get_type_display()} · {event.actor_label}\n{body}",
        )


class PaymentInline(ReadOnlyInline):
    model = Payment
    verbose_name_plural = _("支付单")
    fields = ["out_trade_no", "channel", "amount", "status", "gateway_trade_no", "paid_at", "created_at"]
    readonly_fields = fields


class RefundInline(ReadOnlyInline):
    model = Refund
    verbose_name_plural = _("退款")
    fields = ["out_refund_no", "amount", "status", "reason", "requested_by", "approved_by", "succeeded_at"]
    readonly_fields = fields


# The order page shows these instead of the raw fields until the PII is revealed.
MASKED_FIELDS = {
    "customer_mobile": "customer_mobile_masked",
    "receiver_phone": "receiver_phone_masked",
    "address_detail": "address_detail_masked",
}
PII_REVEAL_SECONDS = 600
MOBILE_NUMBER = re.compile(r"1[0-9]{10}")
ORDER_NUMBER = re.compile(r"[0-9]{18}")


def pii_revealed(request, order: Order) -> bool:
    """This user revealed this order's personal data in this session in the last ten minutes."""
    at = request.session.get("pii_revealed", {}).get(str(order.pk))
    return at is not None and timezone.now().timestamp() - at < PII_REVEAL_SECONDS


def pii_remember_reveal(request, order: Order) -> None:
    revealed = request.session.get("pii_revealed", {})
    now = timezone.now().timestamp()
    revealed = {pk: at for pk, at in revealed.items() if now - at < PII_REVEAL_SECONDS}
    revealed[str(order.pk)] = now
    request.session["pii_revealed"] = revealed


SERVICE_FOR_TRANSITION = {
    "approve": lambda order, actor, **kw: services.order_approve(order=order, actor=actor),
    "confirm_cod": lambda order, actor, **kw: services.order_confirm_cod(order=order, actor=actor),
    "complete": lambda order, actor, **kw: services.order_complete(order=order, actor=actor),
    "cancel": lambda order, actor, **kw: order_cancel(order=order, actor=actor, **kw),
}


@admin.register(Order)
class OrderAdmin(MaskedExportMixin, OrderConsoleMixin, NoDeleteMixin, FSMAdminMixin, admin.ModelAdmin):
    resource_classes = [OrderExport]
    # The cancel page: the order, what will happen (stock, parcels, refund), a button that says so.
    fsm_transition_form_template = "admin/orders/order/transition_form.html"
    export_select_related = ("storefront",)
    fsm_fields = ["status"]
    list_display = [
        "order_no",
        "status_badge",
        "storefront",
        "customer_name",
        "customer_mobile_masked",
        "payable_total",
        "payment_method",
        "review_flag_list",
        "customer_risk",
        "created_at",
        "payment_deadline",
    ]
    list_filter = ["status", "payment_method", "order_type", "storefront", "created_at"]
    search_fields = [
        "order_no",
        "external_id",
        "customer_mobile",
        "customer_name",
        "receiver",
        "tracking_no",
    ]
    list_select_related = ["storefront"]
    # At a million orders: no COUNT(*) of the whole table, no DISTINCT-year scan of a date
    # hierarchy (the 下单时间 filter offers today / 7 days / this month instead).
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # The timeline right after what was bought, where the agent looks first.
    inlines = [OrderLineInline, OrderEventInline, PaymentInline, RefundInline, OrderAftersaleInline]
    fieldsets = [
        (_("催付"), {"fields": ["reminder_links"]}),
        (
            _("订单"),
            {
                "fields": [
                    "order_no",
                    "status",
                    "storefront",
                    "external_id",
                    "order_type",
                    "payment_method",
                    "paid_via",
                    "review_flags",
                    "remark",
                    "cancel_reason",
                    "cancel_note",
                ]
            },
        ),
        (
            _("金额"),
            {
                "fields": [
                    "goods_total",
                    "shipping_fee",
                    "discount_total",
                    "payable_total",
                    "paid_total",
                    "refunded_total",
                    "coupon",
                ]
            },
        ),
        (
            _("顾客"),
            {
                "fields": [
                    "customer_name",
                    "customer_mobile",
                    "customer_email",
                    "customer_member_id",
                ]
            },
        ),
        (
            _("收货地址"),
            {
                "fields": [
                    "receiver",
                    "receiver_phone",
                    "province",
                    "city",
                    "district",
                    "address_detail",
                    "postcode",
                ]
            },
        ),
        (_("包裹与物流"), {"fields": ["shipments_table", "fulfillment_status", "carrier", "tracking_no"]}),
        (
            _("时间"),
            {
                "fields": [
                    "created_at",
                    "payment_deadline",
                    "paid_at",
                    "approved_at",
                    "shipped_at",
                    "completed_at",
                    "cancelled_at",
                ]
            },
        ),
    ]

    actions = ["approve_reviewed"]

    @admin.action(description=_("人工复核通过并审核（大额/风控订单）"), permissions=["review"])
    def approve_reviewed(self, request, queryset):
        actor = services.Actor.staff(request.user)
        run_for_each(
            self,
            request,
            queryset,
            lambda order: services.order_approve(order=order, actor=actor),
            done_message=_("已审核 %(n)d 个订单"),
            label=lambda order: order.order_no,
        )

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("orders.review_order")

    change_form_template = "admin/orders/order/change_form.html"

    def get_search_results(self, request, queryset, search_term):
        """A whole mobile number or order number is what an agent types most: look it up
        exactly (an index scan), not as a substring of every order."""
        term = search_term.strip()
        if MOBILE_NUMBER.fullmatch(term):
            return queryset.filter(Q(customer_mobile=term) | Q(receiver_phone=term)), False
        if ORDER_NUMBER.fullmatch(term):
            return queryset.filter(order_no=term), False
        return super().get_search_results(request, queryset, search_term)

    def get_readonly_fields(self, request, obj=None):
        # Every field is read-only here: changes go through the transition buttons (services).
        return [f.name for f in Order._meta.fields] + [
            "reminder_links",
            "shipments_table",
            "paid_via",
            *MASKED_FIELDS.values(),
        ]

    @admin.display(description=_("实付渠道"))
    def paid_via(self, order: Order) -> str:
        """The channel the money really came by (an order made for Alipay may be paid by WeChat)."""
        channels = order.payments.filter(status=Payment.Status.SUCCEEDED).values_list("channel", flat=True)
        labels = {str(label) for value, label in Payment._meta.get_field("channel").choices if value in set(channels)}
        return "、".join(sorted(labels)) or "—"

    # --- customers' personal data: masked until revealed (logged) by someone allowed to --------

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and pii_revealed(request, obj):
            return fieldsets
        return [
            (title, {**options, "fields": [MASKED_FIELDS.get(name, name) for name in options["fields"]]})
            for title, options in fieldsets
        ]

    @admin.display(description=_("手机号"))
    def customer_mobile_masked(self, order: Order) -> str:
        return mask_mobile(order.customer_mobile)

    @admin.display(description=_("收货人电话"))
    def receiver_phone_masked(self, order: Order) -> str:
        return mask_mobile(order.receiver_phone)

    @admin.display(description=_("详细地址"))
    def address_detail_masked(self, order: Order) -> str:
        return mask_address(order.address_detail)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "pii_can_reveal": request.user.has_perm("orders.view_customer_pii"),
            "pii_revealed": order is not None and pii_revealed(request, order),
            # Every field is read-only: the page acts through its buttons, never 保存.
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        reveal = path(
            "<int:order_id>/reveal-pii/",
            self.admin_site.admin_view(self.reveal_pii_view),
            name="orders_order_reveal_pii",
        )
        return [reveal, *super().get_urls()]

    def reveal_pii_view(self, request, order_id: int):
        order = self.get_object(request, str(order_id))
        if request.method != "POST" or order is None:
            raise Http404
        try:
            services.order_reveal_pii(order=order, user=request.user)
        except DomainError as err:
            self.message_user(request, err.message, level=messages.ERROR)
        else:
            pii_remember_reveal(request, order)
            self.message_user(request, _("已显示完整手机号和地址；本次查看已记录"), level=messages.WARNING)
        return HttpResponseRedirect(reverse("admin:orders_order_change", args=[order.pk]))

    @admin.display(description=_("催付"))
    def reminder_links(self, order: Order):
        return reminder_links_for(order)

    @admin.display(description=_("包裹"))
    def shipments_table(self, order: Order):
        return shipments_table_for(order)  # shipping is per parcel, on each parcel's page

    def has_add_permission(self, request) -> bool:
        return False

    @staticmethod
    def get_fsm_block_label(fsm_field_name: str) -> str:
        return str(_("订单操作"))

    def get_help_text(self, transition) -> str:
        # The library's default is None, which its templates print as a literal "None" tooltip.
        return transition.custom.get("help_text") or ""

    @admin.display(description=_("状态"), ordering="status")
    def status_badge(self, order: Order):
        colours = {
            "pending_payment": "#b26b00",
            "paid": "#1565c0",
            "awaiting_shipment": "#6a1b9a",
            "shipped": "#00695c",
            "completed": "#2e7d32",
            "cancelled": "#757575",
        }
        return format_html(
            '<b style="color:{};white-space:nowrap">{}</b>',
            colours.get(order.status, "#000"),
            order.get_status_display(),
        )

    def get_queryset(self, request):
        flagged = CustomerRiskFlag.objects.filter(mobile=OuterRef("customer_mobile"), active=True)
        return super().get_queryset(request).annotate(customer_flagged=Exists(flagged))

    @admin.display(description=_("信用"), boolean=False, ordering="customer_flagged")
    def customer_risk(self, order: Order) -> str:
        return _("⚠ 多次未付款") if getattr(order, "customer_flagged", False) else "—"

    @admin.display(description=_("复核"))
    def review_flag_list(self, order: Order) -> str:
        return _("、").join(str(services.ReviewFlag(flag).label) for flag in order.review_flags) or "—"

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None) -> bool:
        handler = SERVICE_FOR_TRANSITION.get(transition_name)
        if handler is None:
            self.message_user(request, _("此操作不能在后台执行"), level=messages.ERROR)
            return False
        try:
            handler(obj, services.Actor.staff(request.user), **(kwargs or {}))
        except DomainError as err:
            self.message_user(request, err.message, level=messages.ERROR)
            return False
        self.message_user(request, _("操作成功"), level=messages.SUCCESS)
        return True


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "order",
        "type",
        "from_status",
        "to_status",
        "actor_kind",
        "actor_label",
        "reason",
    ]
    list_filter = ["type", "actor_kind"]
    search_fields = ["order__order_no", "actor_label"]
    list_select_related = ["order"]


@admin.register(OrderLine)
class OrderLineAdmin(ReadOnlyAdmin):
    list_display = [
        "order",
        "sku_code",
        "name",
        "spec",
        "unit_price",
        "quantity",
        "line_total",
        "discount",
    ]
    search_fields = ["order__order_no", "sku_code"]
    list_select_related = ["order"]


@admin.register(Storefront)
class StorefrontAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["code", "name", "allowed_payment_methods", "active", "created_at"]


@admin.register(StorefrontAPIKey)
class StorefrontAPIKeyAdmin(NoDeleteMixin, APIKeyModelAdmin):
    list_display = [*APIKeyModelAdmin.list_display, "storefront"]


@admin.register(Coupon)
class CouponAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "kind",
        "threshold",
        "reduction",
        "percent_off",
        "max_discount",
        "used_count",
        "usage_limit",
        "valid_from",
        "valid_until",
        "active",
    ]
    readonly_fields = ["used_count"]


class RiskFlagForm(forms.ModelForm):
    clear_now = forms.BooleanField(label=_("解除标记"), required=False)

    class Meta:
        model = CustomerRiskFlag
        fields = ["clear_reason"]


@admin.register(CustomerRiskFlag)
class CustomerRiskFlagAdmin(NoDeleteMixin, admin.ModelAdmin):
    """信用: flagged customers may not use cash on delivery. Staff clear a flag with a reason."""

    form = RiskFlagForm
    list_display = ["mobile_masked", "active", "timeout_closes", "flagged_at", "reason", "cleared_by", "cleared_at"]
    list_filter = ["active"]
    search_fields = ["mobile"]
    readonly_fields = ["mobile_masked", "active", "timeout_closes", "flagged_at", "reason", "cleared_by", "cleared_at"]
    fields = [*readonly_fields, "clear_now", "clear_reason"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description=_("手机号"), ordering="mobile")
    def mobile_masked(self, flag: CustomerRiskFlag) -> str:
        return mask_mobile(flag.mobile)

    def save_model(self, request, obj, form, change):
        if form.cleaned_data.get("clear_now") and obj.active:
            try:
                customer_risk_clear(flag=obj, user=request.user, reason=form.cleaned_data["clear_reason"])
            except DomainError as err:
                self.message_user(request, err.message, level=messages.ERROR)


@admin.register(PiiAccess)
class PiiAccessAdmin(ReadOnlyAdmin):
    """个人信息查看记录: who revealed which order's personal data, and when (主管 read it)."""

    list_display = ["created_at", "user", "order"]
    list_filter = ["created_at"]
    search_fields = ["order__order_no", "user__username"]
    list_select_related = ["order", "user"]
    date_hierarchy = "created_at"
