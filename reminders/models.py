"""催付: rules that say when to send what, one row per message sent (or skipped), the
customer-service record of their own calls, and customers' contact preferences.

A Reminder row is the message's durable outbox entry: it is written in the database
first (by the scheduler, or by the timeout sweep for closed notices) and delivered by
`send_due_reminders`, at most once per (order, rule).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, transition


class Channel(models.TextChoices):
    SMS = "sms", _("短信")
    EMAIL = "email", _("邮件")
    IN_APP = "in_app", _("站内信")


class Purpose(models.TextChoices):
    """What a message is for. Only 催付 counts against the caps and is skipped once the order is paid.

    The fulfillment notices (shipped, delivered, cancelled by the merchant) are queued by the
    service that does the thing, inside its transaction (reminders_notify_orders); the
    scheduler never scans for them.
    """

    PAYMENT_REMINDER = "payment_reminder", _("催付")
    CONFIRMATION = "confirmation", _("下单确认")
    CLOSED_NOTICE = "closed_notice", _("关单通知")
    SHIPPED_NOTICE = "shipped_notice", _("发货通知")
    DELIVERED_NOTICE = "delivered_notice", _("签收通知")
    CANCELLED_NOTICE = "cancelled_notice", _("商家取消通知")
    AFTERSALE_APPROVED = "aftersale_approved", _("售后已同意")
    AFTERSALE_RETURN = "aftersale_return", _("售后退货地址")
    AFTERSALE_REJECTED = "aftersale_rejected", _("售后被拒绝")
    AFTERSALE_REFUNDED = "aftersale_refunded", _("售后已退款")


class ReminderRule(models.Model):
    class Kind(models.TextChoices):
        AFTER_CREATED = "after_created", _("下单后")
        BEFORE_DEADLINE = "before_deadline", _("付款截止前")
        AFTER_PAYMENT_STARTED = "after_payment_started", _("发起支付后未完成")
        AFTER_CLOSED = "after_closed", _("超时关单后")
        AFTER_SHIPPED = "after_shipped", _("发货后")
        AFTER_DELIVERED = "after_delivered", _("签收后")
        AFTER_MERCHANT_CANCELLED = "after_merchant_cancelled", _("商家取消后")
        AFTER_AFTERSALE = "after_aftersale", _("售后进展")

    code = models.SlugField(
        _("编码"), max_length=64, unique=True, null=True, blank=True, help_text=_("内置规则的编码；自建规则可留空")
    )
    name = models.CharField(_("名称"), max_length=100)
    purpose = models.CharField(_("用途"), max_length=32, choices=Purpose.choices, default=Purpose.PAYMENT_REMINDER)
    kind = models.CharField(_("发送时机"), max_length=32, choices=Kind.choices)
    offset_minutes = models.PositiveIntegerField(
        _("间隔（分钟）"),
        default=0,
        help_text=_("下单后 / 发起支付后多少分钟；或付款截止前多少分钟"),
    )
    channel = models.CharField(_("渠道"), max_length=16, choices=Channel.choices, default=Channel.SMS)
    order_types = models.JSONField(_("适用订单类型"), default=list, blank=True, help_text=_("留空表示全部类型"))
    template = models.TextField(_("消息模板"))
    email_subject = models.CharField(_("邮件标题模板"), max_length=200, blank=True)
    sms_template_code = models.CharField(
        _("短信模板编号"),
        max_length=64,
        blank=True,
        help_text=_("阿里云短信模板 CODE；留空用 ALIYUN_SMS_TEMPLATE_CODE"),
    )
    active = models.BooleanField(_("启用"), default=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("提醒规则")
        verbose_name_plural = _("提醒规则")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="after_closed", purpose="closed_notice")
                    | Q(purpose="confirmation", kind="after_created")
                    | Q(
                        purpose="payment_reminder",
                        kind__in=["after_created", "before_deadline", "after_payment_started"],
                    )
                    | Q(purpose="shipped_notice", kind="after_shipped")
                    | Q(purpose="delivered_notice", kind="after_delivered")
                    | Q(purpose="cancelled_notice", kind="after_merchant_cancelled")
                    | Q(
                        purpose__in=[
                            "aftersale_approved",
                            "aftersale_return",
                            "aftersale_rejected",
                            "aftersale_refunded",
                        ],
                        kind="after_aftersale",
                    )
                ),
                name="reminder_rule_purpose_fits_kind",
                violation_error_message=_(
                    "关单通知只能用“超时关单后”；下单确认只能用“下单后”；"
                    "催付只能用“下单后”“付款截止前”“发起支付后未完成”；"
                    "发货、签收、商家取消通知只能用“发货后”“签收后”“商家取消后”；售后通知只能用“售后进展”"
                ),
            )
        ]

    def __str__(self) -> str:
        return self.name


class Reminder(models.Model):
    """One message for one order by one rule: scheduled → sending → sent / skipped / failed."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("待发送")
        SENDING = "sending", _("发送中")
        SENT = "sent", _("已发送")
        SKIPPED = "skipped", _("已跳过")
        FAILED = "failed", _("发送失败")

    class SkipReason(models.TextChoices):
        ORDER_PAID = "order_paid", _("订单已付款")
        ORDER_CANCELLED = "order_cancelled", _("订单已取消")
        ORDER_REOPENED = "order_reopened", _("订单已恢复，不再是关闭状态")
        PAST_DEADLINE = "past_deadline", _("已过付款截止时间")
        QUIET_HOURS = "quiet_hours", _("免打扰时段结束时已过截止时间")
        TOO_SOON = "too_soon", _("距上次催付太近，截止前没有合适的时间")
        ORDER_CAP = "order_cap", _("已达每单催付上限")
        DAILY_CAP = "daily_cap", _("已达顾客每日催付上限")
        OPTED_OUT = "opted_out", _("顾客已退订")
        NO_CONTACT = "no_contact", _("没有可用的联系方式")
        RULE_INACTIVE = "rule_inactive", _("规则已停用")

    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="reminders", verbose_name=_("订单")
    )
    rule = models.ForeignKey(ReminderRule, on_delete=models.PROTECT, related_name="reminders", verbose_name=_("规则"))
    purpose = models.CharField(_("用途"), max_length=32, choices=Purpose.choices)
    channel = models.CharField(_("渠道"), max_length=16, choices=Channel.choices)
    status = FSMField(_("状态"), max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    scheduled_at = models.DateTimeField(_("计划时间"))
    next_attempt_at = models.DateTimeField(_("下次尝试时间"))
    attempts = models.PositiveSmallIntegerField(_("尝试次数"), default=0)
    claimed_at = models.DateTimeField(_("开始发送时间"), null=True, blank=True)
    sent_at = models.DateTimeField(_("发送时间"), null=True, blank=True, db_index=True)
    recipient = models.CharField(_("接收方"), max_length=254, blank=True)
    text = models.TextField(_("消息内容"), blank=True)
    variables = models.JSONField(
        _("附加变量"),
        default=dict,
        blank=True,
        help_text=_("排队时记下的模板变量，如发货通知的快递公司和运单号"),
    )
    subject = models.CharField(
        _("事项"), max_length=40, blank=True, db_default="", help_text=_("同一订单的多个售后单各发一次：售后单号")
    )
    provider_message_id = models.CharField(_("服务商消息ID"), max_length=128, blank=True)
    skip_reason = models.CharField(_("跳过原因"), max_length=32, choices=SkipReason.choices, blank=True)
    last_error = models.CharField(_("最近错误"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("提醒")
        verbose_name_plural = _("提醒")
        ordering = ["-scheduled_at", "-id"]
        # Once per (order, rule) — and, for after-sales notices, per request (`subject`).
        constraints = [
            models.UniqueConstraint(fields=["order", "rule", "subject"], name="reminder_once_per_order_rule_subject")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.order_id}/{self.rule_id}"

    # --- transitions: only this row's fields; services lock, decide and save ------

    @transition(field=status, source=Status.SCHEDULED, target=Status.SCHEDULED)
    def defer(self, *, until) -> None:
        self.next_attempt_at = until

    @transition(field=status, source=Status.SCHEDULED, target=Status.SKIPPED)
    def skip(self, *, reason: str) -> None:
        self.skip_reason = reason

    @transition(field=status, source=Status.SCHEDULED, target=Status.SENDING)
    def claim(self, *, at, recipient: str, text: str) -> None:
        """Taken for sending, inside the locking transaction and before any network call."""
        self.attempts += 1
        self.claimed_at = at
        self.recipient = recipient
        self.text = text

    @transition(field=status, source=Status.SENDING, target=Status.SENT)
    def mark_sent(self, *, at, provider_message_id: str) -> None:
        self.sent_at = at
        self.provider_message_id = provider_message_id[:128]
        self.last_error = ""

    @transition(field=status, source=Status.SENDING, target=Status.SCHEDULED)
    def retry_later(self, *, at, error: str) -> None:
        self.next_attempt_at = at
        self.last_error = error[:500]

    @transition(field=status, source=[Status.SCHEDULED, Status.SENDING], target=Status.FAILED)
    def fail(self, *, error: str) -> None:
        self.last_error = error[:500]

    @transition(field=status, source=Status.FAILED, target=Status.SCHEDULED)
    def requeue(self, *, at) -> None:
        """Customer service decided to try a failed message again."""
        self.next_attempt_at = at
        self.attempts = 0


class ManualReminder(models.Model):
    """人工催付: a call or chat by customer service, with what the customer said."""

    class Channel(models.TextChoices):
        PHONE = "phone", _("电话")
        IM = "im", _("在线客服/IM")
        SMS = "sms", _("短信")

    class Outcome(models.TextChoices):
        FUNDS_LIMITED = "funds_limited", _("余额不足/支付受限")
        CONSIDERING = "considering", _("还在考虑/比价")
        TOO_EXPENSIVE = "too_expensive", _("嫌贵")
        PAYMENT_TOOL = "payment_tool", _("支付工具问题（U盾/证书）")
        NOT_WANTED = "not_wanted", _("不想要了")
        UNREACHABLE = "unreachable", _("联系不上")
        OTHER = "other", _("其他")

    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="manual_reminders", verbose_name=_("订单")
    )
    channel = models.CharField(_("方式"), max_length=16, choices=Channel.choices)
    outcome = models.CharField(_("结果分类"), max_length=32, choices=Outcome.choices)
    note = models.TextField(_("备注"), blank=True)
    promised_pay_at = models.DateTimeField(_("承诺付款时间"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("客服"),
    )
    created_at = models.DateTimeField(_("催付时间"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("人工催付")
        verbose_name_plural = _("人工催付")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.get_channel_display()} {self.get_outcome_display()}"


class CustomerContactPreference(models.Model):
    """A customer (by mobile number) who asked not to be sent 催付 messages (退订)."""

    mobile = models.CharField(_("顾客手机"), max_length=20, unique=True)
    opted_out = models.BooleanField(_("退订催付"), default=True)
    reason = models.CharField(_("原因"), max_length=200, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("操作人"),
    )
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("顾客联系偏好")
        verbose_name_plural = _("顾客联系偏好（退订）")
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.mobile


class Report(Reminder):
    """The operations report (/admin/reminders/report/): an admin page, no table of its own."""

    class Meta:
        proxy = True
        verbose_name = _("催付报表")
        verbose_name_plural = _("催付报表")
