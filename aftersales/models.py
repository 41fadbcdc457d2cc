"""After-sales (售后): refund only, return and refund, exchange, resend, and the staff-only
compensation. One request (Aftersale) covers some units of some lines of one order; its own
state machine runs the work, with a deadline for whoever has to act next.

Transitions change only the request's own fields; aftersales.services does the rest
(eligibility, money, stock, the refund, the replacement parcel, the order's timeline).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, FSMModelMixin, transition

MONEY = {"max_digits": 12, "decimal_places": 2}


class AftersaleType(models.TextChoices):
    REFUND_ONLY = "refund_only", _("仅退款")
    RETURN_REFUND = "return_refund", _("退货退款")
    EXCHANGE = "exchange", _("换货")
    RESEND = "resend", _("补寄")
    COMPENSATION = "compensation", _("补差")


class Responsibility(models.TextChoices):
    SELLER = "seller", _("商家")
    BUYER = "buyer", _("买家")
    CARRIER = "carrier", _("快递")


class AftersaleReason(models.TextChoices):
    QUALITY_ISSUE = "quality_issue", _("质量问题")
    WRONG_ITEM = "wrong_item", _("发错货")
    MISSING_ITEM = "missing_item", _("少件/漏发")
    NOT_AS_DESCRIBED = "not_as_described", _("与描述不符")
    DAMAGED_IN_TRANSIT = "damaged_in_transit", _("物流破损")
    SIZE_UNFIT = "size_unfit", _("尺码不合适")
    NO_REASON_7DAYS = "no_reason_7days", _("七天无理由")
    CHANGED_MIND = "changed_mind", _("不想要了")


R = AftersaleReason
RESPONSIBILITY = {
    R.QUALITY_ISSUE: Responsibility.SELLER,
    R.WRONG_ITEM: Responsibility.SELLER,
    R.MISSING_ITEM: Responsibility.SELLER,
    R.NOT_AS_DESCRIBED: Responsibility.SELLER,
    R.DAMAGED_IN_TRANSIT: Responsibility.CARRIER,
    R.SIZE_UNFIT: Responsibility.BUYER,
    R.NO_REASON_7DAYS: Responsibility.BUYER,
    R.CHANGED_MIND: Responsibility.BUYER,
}
# Reasons that are the goods' fault: allowed through the whole after-sales period.
QUALITY_REASONS = {R.QUALITY_ISSUE, R.WRONG_ITEM, R.MISSING_ITEM, R.NOT_AS_DESCRIBED, R.DAMAGED_IN_TRANSIT}


class AftersaleStatus(models.TextChoices):
    REQUESTED = "requested", _("待处理")
    APPROVED = "approved", _("已同意")
    REJECTED = "rejected", _("已拒绝")
    AWAITING_RETURN = "awaiting_return", _("待买家退货")
    RETURN_SHIPPED = "return_shipped", _("买家已寄回")
    RECEIVED = "received", _("仓库已收货")
    INSPECTED = "inspected", _("已验收")
    REFUNDING = "refunding", _("退款中")
    RESHIPPING = "reshipping", _("补发中")
    COMPLETED = "completed", _("已完成")
    CANCELLED = "cancelled", _("已撤销")
    CLOSED = "closed", _("已关闭")


A = AftersaleStatus
OPEN_STATUSES = [
    A.REQUESTED,
    A.APPROVED,
    A.AWAITING_RETURN,
    A.RETURN_SHIPPED,
    A.RECEIVED,
    A.INSPECTED,
    A.REFUNDING,
    A.RESHIPPING,
]
# A request in these no longer claims its units.
RELEASED_STATUSES = [A.REJECTED, A.CANCELLED, A.CLOSED]
CUSTOMER_CANCELLABLE = [A.REQUESTED, A.APPROVED, A.AWAITING_RETURN, A.RETURN_SHIPPED]


class Disposition(models.TextChoices):
    RESTOCK = "restock", _("入库可售")
    DEFECTIVE = "defective", _("次品隔离")
    SCRAP = "scrap", _("报废")


class Aftersale(ConcurrentTransitionMixin, FSMModelMixin, models.Model):
    aftersale_no = models.CharField(_("售后单号"), max_length=32, unique=True)
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="aftersales", verbose_name=_("订单")
    )
    type = models.CharField(_("类型"), max_length=20, choices=AftersaleType.choices)
    reason = models.CharField(_("原因"), max_length=32, choices=AftersaleReason.choices)
    responsibility = models.CharField(_("责任方"), max_length=16, choices=Responsibility.choices)
    description = models.CharField(_("问题描述"), max_length=500, blank=True)
    images = models.JSONField(_("图片"), default=list, blank=True)
    status = FSMField(_("状态"), max_length=20, choices=AftersaleStatus.choices, default=A.REQUESTED, protected=True)
    opened_by = models.CharField(_("发起方"), max_length=150)
    # What the customer asks, what it will be, and what went back (all exact to the cent).
    refund_amount = models.DecimalField(_("应退金额"), default=0, **MONEY)
    refund_shipping = models.BooleanField(_("退运费"), default=False)
    freight_compensation = models.DecimalField(_("退货运费补偿"), default=0, **MONEY)
    compensation_amount = models.DecimalField(_("补差金额"), default=0, **MONEY)
    refunded_amount = models.DecimalField(_("已退金额"), default=0, **MONEY)
    out_refund_no = models.CharField(_("退款单号"), max_length=64, blank=True)
    deadline = models.DateTimeField(_("处理时限"), null=True, blank=True, db_index=True)
    escalated = models.BooleanField(_("已升级主管"), default=False, db_index=True)
    warned = models.BooleanField(_("已提醒即将超时"), default=False)
    reject_reason = models.CharField(_("拒绝原因"), max_length=200, blank=True)
    return_shipment = models.ForeignKey(
        "fulfillment.Shipment",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("退货包裹"),
    )
    replacement_shipment = models.ForeignKey(
        "fulfillment.Shipment",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("补发包裹"),
    )
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("处理人"),
    )
    created_at = models.DateTimeField(_("申请时间"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    approved_at = models.DateTimeField(_("同意时间"), null=True, blank=True)
    return_shipped_at = models.DateTimeField(_("买家寄回时间"), null=True, blank=True)
    received_at = models.DateTimeField(_("收货时间"), null=True, blank=True)
    inspected_at = models.DateTimeField(_("验收时间"), null=True, blank=True)
    completed_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    closed_at = models.DateTimeField(_("关闭/撤销时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("售后单")
        verbose_name_plural = _("售后单")
        ordering = ["deadline", "id"]
        indexes = [models.Index(fields=["status", "deadline"], name="aftersale_status_deadline_idx")]
        permissions = [
            ("approve_aftersale", _("可同意/拒绝售后")),
            ("approve_large_aftersale", _("可同意超过限额的售后（主管）")),
            ("inspect_aftersale", _("可收货验收退货")),
            ("open_aftersale", _("可代顾客发起售后（含补差）")),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(refunded_amount__gte=0), name="aftersale_refunded_non_negative"),
        ]

    def __str__(self) -> str:
        return self.aftersale_no

    # --- transitions: change only this row's fields ------------------------------

    @transition(field=status, source=A.REQUESTED, target=A.APPROVED)
    def approve(self, *, by, at) -> None:
        self.handled_by = by
        self.approved_at = at

    @transition(field=status, source=A.REQUESTED, target=A.REJECTED)
    def reject(self, *, by, reason: str, at) -> None:
        self.handled_by = by
        self.reject_reason = reason
        self.closed_at = at

    @transition(field=status, source=A.APPROVED, target=A.AWAITING_RETURN)
    def await_return(self, *, deadline) -> None:
        self.deadline = deadline

    @transition(field=status, source=A.AWAITING_RETURN, target=A.RETURN_SHIPPED)
    def ship_return(self, *, shipment, at) -> None:
        self.return_shipment = shipment
        self.return_shipped_at = at
        self.deadline = None  # the receive clock starts at the return's delivery

    @transition(field=status, source=[A.AWAITING_RETURN, A.RETURN_SHIPPED], target=A.RECEIVED)
    def receive(self, *, at) -> None:
        self.received_at = at

    @transition(field=status, source=A.RECEIVED, target=A.INSPECTED)
    def inspect(self, *, at) -> None:
        self.inspected_at = at

    @transition(field=status, source=[A.APPROVED, A.INSPECTED], target=A.REFUNDING)
    def start_refund(self, *, out_refund_no: str, amount, deadline) -> None:
        self.out_refund_no = out_refund_no
        self.refund_amount = amount
        self.deadline = deadline

    @transition(field=status, source=[A.APPROVED, A.INSPECTED], target=A.RESHIPPING)
    def reship(self, *, shipment) -> None:
        self.replacement_shipment = shipment
        self.deadline = None

    @transition(field=status, source=[A.REFUNDING, A.RESHIPPING, A.INSPECTED], target=A.COMPLETED)
    def complete(self, *, refunded, at) -> None:
        self.refunded_amount = refunded
        self.completed_at = at
        self.deadline = None

    @transition(field=status, source=CUSTOMER_CANCELLABLE, target=A.CANCELLED)
    def cancel(self, *, at) -> None:
        self.closed_at = at
        self.deadline = None

    @transition(field=status, source=[A.AWAITING_RETURN], target=A.CLOSED)
    def close(self, *, at) -> None:
        self.closed_at = at
        self.deadline = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class AftersaleLine(models.Model):
    aftersale = models.ForeignKey(Aftersale, on_delete=models.PROTECT, related_name="lines", verbose_name=_("售后单"))
    order_line = models.ForeignKey(
        "orders.OrderLine", on_delete=models.PROTECT, related_name="aftersale_lines", verbose_name=_("订单行")
    )
    quantity = models.PositiveIntegerField(_("申请数量"))
    exchange_sku = models.ForeignKey(
        "inventory.Sku",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("换成"),
        help_text=_("换货换另一规格（同价）时填写；空为换同款"),
    )
    quantity_received = models.PositiveIntegerField(_("收到数量"), null=True, blank=True)
    quantity_accepted = models.PositiveIntegerField(_("验收通过数量"), null=True, blank=True)
    disposition = models.CharField(_("处置"), max_length=16, choices=Disposition.choices, blank=True)
    grade = models.CharField(_("成色"), max_length=32, blank=True)
    photos = models.JSONField(_("验收照片"), default=list, blank=True)
    refund_amount = models.DecimalField(_("退款金额"), default=0, **MONEY)
    # Which of the line's units this refund covers: units [unit_from, unit_from + refunded units).
    unit_from = models.PositiveIntegerField(_("起始件序"), default=0)

    class Meta:
        verbose_name = _("售后明细")
        verbose_name_plural = _("售后明细")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="aftersale_line_quantity_positive"),
            models.CheckConstraint(
                condition=Q(quantity_accepted__isnull=True) | Q(quantity_accepted__lte=models.F("quantity_received")),
                name="aftersale_line_accepted_le_received",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.aftersale_id}:{self.order_line_id}x{self.quantity}"


class Report(Aftersale):
    """The after-sales report (/admin/aftersales/report/): an admin page, no table of its own."""

    class Meta:
        proxy = True
        verbose_name = _("售后报表")
        verbose_name_plural = _("售后报表")
