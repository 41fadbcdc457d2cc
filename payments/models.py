"""Payments: attempts, the notify inbox, refunds, bank transfers, statements and the
finance review queue. Every yuan that reaches or leaves us has a row here.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, FSMModelMixin, transition

from orders.models import PaymentMethod

MONEY = {"max_digits": 12, "decimal_places": 2}


# One enum for payment channels: the order's payment method is the channel its money comes by.
Channel = PaymentMethod


GATEWAY_CHANNELS = [Channel.ALIPAY, Channel.WECHATPAY]


class Payment(ConcurrentTransitionMixin, FSMModelMixin, models.Model):
    """One attempt to pay an order through a channel. `out_trade_no` is what the gateway sees."""

    class Status(models.TextChoices):
        CREATED = "created", _("待支付")
        SUCCEEDED = "succeeded", _("支付成功")
        CLOSED = "closed", _("已关闭")
        FAILED = "failed", _("支付失败")

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payments", verbose_name=_("订单"))
    channel = models.CharField(_("渠道"), max_length=16, choices=Channel.choices)
    out_trade_no = models.CharField(_("商户交易号"), max_length=64, unique=True)
    amount = models.DecimalField(_("金额"), **MONEY)
    status = FSMField(_("状态"), max_length=16, choices=Status.choices, default=Status.CREATED, protected=True)
    gateway_trade_no = models.CharField(_("渠道交易号"), max_length=64, blank=True, db_index=True)
    expires_at = models.DateTimeField(_("失效时间"), null=True, blank=True)
    paid_at = models.DateTimeField(_("支付时间"), null=True, blank=True)
    closed_at = models.DateTimeField(_("关闭时间"), null=True, blank=True)
    last_synced_at = models.DateTimeField(_("最近查单时间"), null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("支付单")
        verbose_name_plural = _("支付单")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return self.out_trade_no

    @transition(field=status, source=Status.CREATED, target=Status.SUCCEEDED)
    def succeed(self, *, trade_no: str, at) -> None:
        self.gateway_trade_no = trade_no
        self.paid_at = at

    @transition(field=status, source=Status.CLOSED, target=Status.SUCCEEDED)
    def succeed_after_close(self, *, trade_no: str, at) -> None:
        """The gateway says it was paid after all (a late notify for a closed attempt)."""
        self.gateway_trade_no = trade_no
        self.paid_at = at

    @transition(field=status, source=Status.CREATED, target=Status.CLOSED)
    def close(self, *, at) -> None:
        self.closed_at = at

    @transition(field=status, source=Status.CREATED, target=Status.FAILED)
    def fail(self) -> None:
        pass


class PaymentNotification(models.Model):
    """The inbox: every notify, stored raw before anything else happens."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", _("支付通知")
        REFUND = "refund", _("退款通知")
        OTHER = "other", _("其他")
        UNKNOWN = "unknown", _("未验签")

    class Outcome(models.TextChoices):
        PENDING = "pending", _("待处理")
        APPLIED = "applied", _("已入账")
        DUPLICATE = "duplicate", _("重复通知")
        CASE_OPENED = "case_opened", _("已转人工")
        REJECTED = "rejected", _("验签失败")
        IGNORED = "ignored", _("无需处理")

    channel = models.CharField(_("渠道"), max_length=16, choices=Channel.choices)
    dedupe_key = models.CharField(_("通知ID"), max_length=128, blank=True)
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices, default=Kind.UNKNOWN)
    raw_body = models.TextField(_("原始报文"))
    headers = models.JSONField(_("请求头"), default=dict, blank=True)
    verified = models.BooleanField(_("验签通过"), default=False)
    verify_error = models.CharField(_("验签错误"), max_length=200, blank=True)
    outcome = models.CharField(_("处理结果"), max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    outcome_note = models.CharField(_("说明"), max_length=300, blank=True)
    out_trade_no = models.CharField(_("商户交易号"), max_length=64, blank=True, db_index=True)
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="notifications", verbose_name=_("支付单")
    )
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("订单")
    )
    received_at = models.DateTimeField(_("收到时间"), auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(_("处理时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("支付通知")
        verbose_name_plural = _("支付通知")
        ordering = ["-received_at", "-id"]
        constraints = [
            # Only verified notifications claim their id: a forged body cannot block the real one.
            models.UniqueConstraint(
                fields=["channel", "dedupe_key"],
                condition=Q(verified=True) & ~Q(outcome="duplicate"),
                name="notification_unique_verified_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.dedupe_key or self.pk}"


class Refund(ConcurrentTransitionMixin, FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", _("待审批")
        APPROVED = "approved", _("已审批")
        PROCESSING = "processing", _("退款中")
        SUCCEEDED = "succeeded", _("退款成功")
        FAILED = "failed", _("退款失败")

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="refunds", verbose_name=_("订单"))
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds", verbose_name=_("原支付单")
    )
    out_refund_no = models.CharField(_("退款单号"), max_length=64, unique=True)
    amount = models.DecimalField(_("退款金额"), **MONEY)
    reason = models.CharField(_("退款原因"), max_length=200)
    status = FSMField(_("状态"), max_length=16, choices=Status.choices, default=Status.REQUESTED, protected=True)
    requested_by = models.CharField(_("发起方"), max_length=150)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("审批人"),
    )
    approved_at = models.DateTimeField(_("审批时间"), null=True, blank=True)
    gateway_refund_no = models.CharField(_("渠道退款号"), max_length=64, blank=True)
    attempts = models.PositiveIntegerField(_("执行次数"), default=0)
    last_error = models.CharField(_("最近错误"), max_length=300, blank=True)
    succeeded_at = models.DateTimeField(_("退款成功时间"), null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("退款")
        verbose_name_plural = _("退款")
        ordering = ["-created_at"]
        permissions = [
            ("approve_refund", _("可审批退款")),
            ("record_offline_payment", _("可登记对公转账和货到付款收款")),
        ]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive")]

    def __str__(self) -> str:
        return self.out_refund_no

    @transition(field=status, source=Status.REQUESTED, target=Status.APPROVED, permission="payments.approve_refund")
    def approve(self, *, by, at) -> None:
        self.approved_by = by
        self.approved_at = at

    @transition(field=status, source=[Status.APPROVED, Status.FAILED], target=Status.PROCESSING)
    def start(self) -> None:
        """Send (or re-send, with the same out_refund_no) to the gateway."""
        self.attempts += 1

    @transition(field=status, source=Status.PROCESSING, target=Status.SUCCEEDED)
    def succeed(self, *, gateway_refund_no: str, at) -> None:
        self.gateway_refund_no = gateway_refund_no or self.gateway_refund_no
        self.succeeded_at = at
        self.last_error = ""

    @transition(field=status, source=Status.PROCESSING, target=Status.FAILED)
    def fail(self, *, error: str) -> None:
        self.last_error = error[:300]


class ReconciliationCase(models.Model):
    """The finance review queue: every money anomaly lands here, once."""

    class Type(models.TextChoices):
        AMOUNT_MISMATCH = "amount_mismatch", _("金额不符")
        UNKNOWN_ORDER = "unknown_order", _("未知订单")
        MERCHANT_MISMATCH = "merchant_mismatch", _("商户号/应用ID不符")
        PAID_AFTER_CLOSE = "paid_after_close", _("关单后付款")
        OVERPAID = "overpaid", _("重复支付")
        REFUND_FAILED = "refund_failed", _("退款失败")
        STATEMENT_MISMATCH = "statement_mismatch", _("对账差异")
        UNMATCHED_TRANSFER = "unmatched_transfer", _("未匹配的转账")

    class Status(models.TextChoices):
        OPEN = "open", _("待处理")
        IN_PROGRESS = "in_progress", _("处理中")
        RESOLVED = "resolved", _("已解决")

    class Resolution(models.TextChoices):
        REFUNDED = "refunded", _("已退款")
        APPLIED = "applied", _("已补单入账")
        WRITTEN_OFF = "written_off", _("核销")
        FALSE_ALARM = "false_alarm", _("无需处理")
        OTHER = "other", _("其他")

    type = models.CharField(_("类型"), max_length=32, choices=Type.choices)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    dedupe_key = models.CharField(_("去重键"), max_length=200, unique=True)
    channel = models.CharField(_("渠道"), max_length=16, choices=Channel.choices, blank=True)
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="cases", verbose_name=_("订单")
    )
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="cases", verbose_name=_("支付单")
    )
    refund = models.ForeignKey(
        Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="cases", verbose_name=_("退款")
    )
    notification = models.ForeignKey(
        PaymentNotification, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("通知")
    )
    out_trade_no = models.CharField(_("商户交易号"), max_length=64, blank=True, db_index=True)
    expected_amount = models.DecimalField(_("应收/应付"), null=True, blank=True, **MONEY)
    actual_amount = models.DecimalField(_("实收/实付"), null=True, blank=True, **MONEY)
    summary = models.CharField(_("摘要"), max_length=300)
    data = models.JSONField(_("附加信息"), default=dict, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("处理人"),
    )
    resolution = models.CharField(_("处理结论"), max_length=16, choices=Resolution.choices, blank=True)
    note = models.TextField(_("备注"), blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(_("解决时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("对账差异")
        verbose_name_plural = _("对账差异（财务复核）")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_type_display()} {self.out_trade_no}"


class BankTransfer(models.Model):
    """对公转账: an incoming transfer that finance saw on the bank statement."""

    class Status(models.TextChoices):
        MATCHED = "matched", _("已匹配")
        UNMATCHED = "unmatched", _("未匹配")

    payer = models.CharField(_("付款方"), max_length=100)
    amount = models.DecimalField(_("金额"), **MONEY)
    remark = models.CharField(_("附言"), max_length=200, blank=True)
    received_at = models.DateTimeField(_("到账时间"))
    bank_reference = models.CharField(_("银行流水号"), max_length=64, unique=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices)
    payment = models.OneToOneField(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="bank_transfer", verbose_name=_("支付单")
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+", verbose_name=_("录入人")
    )
    created_at = models.DateTimeField(_("录入时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("对公转账")
        verbose_name_plural = _("对公转账")
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.payer} {self.amount}"


class StatementImport(models.Model):
    """One imported gateway bill (对账单) and its match report."""

    channel = models.CharField(_("渠道"), max_length=16, choices=Channel.choices)
    file_name = models.CharField(_("文件名"), max_length=200)
    file_sha256 = models.CharField(_("文件摘要"), max_length=64)
    lines_total = models.PositiveIntegerField(_("行数"), default=0)
    matched = models.PositiveIntegerField(_("一致"), default=0)
    missing_here = models.PositiveIntegerField(_("我方缺失"), default=0)
    missing_at_gateway = models.PositiveIntegerField(_("渠道缺失"), default=0)
    amount_differs = models.PositiveIntegerField(_("金额不符"), default=0)
    period_start = models.DateTimeField(_("账期开始"), null=True, blank=True)
    period_end = models.DateTimeField(_("账期结束"), null=True, blank=True)
    imported_by = models.CharField(_("导入人"), max_length=150)
    created_at = models.DateTimeField(_("导入时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("对账单导入")
        verbose_name_plural = _("对账单导入")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.channel} {self.file_name}"


class StatementLine(models.Model):
    class Kind(models.TextChoices):
        PAYMENT = "payment", _("收款")
        REFUND = "refund", _("退款")

    class Result(models.TextChoices):
        MATCHED = "matched", _("一致")
        MISSING_HERE = "missing_here", _("我方缺失")
        AMOUNT_DIFFERS = "amount_differs", _("金额不符")

    statement = models.ForeignKey(StatementImport, on_delete=models.PROTECT, related_name="lines")
    gateway_trade_no = models.CharField(_("渠道交易号"), max_length=64)
    out_trade_no = models.CharField(_("商户单号"), max_length=64)
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices)
    amount = models.DecimalField(_("金额"), **MONEY)
    occurred_at = models.DateTimeField(_("时间"))
    result = models.CharField(_("结果"), max_length=16, choices=Result.choices)

    class Meta:
        verbose_name = _("对账单明细")
        verbose_name_plural = _("对账单明细")

    def __str__(self) -> str:
        return f"{self.kind} {self.out_trade_no} {self.amount}"
