"""The sandbox gateway's own books: trades it was asked to collect, refunds, and its notify outbox.

These rows play the gateway's side of the world. They are never read by the OMS business code,
which only ever learns about them through signed notifies and signed API answers.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

MONEY = {"max_digits": 12, "decimal_places": 2}


class SandboxChannel(models.TextChoices):
    ALIPAY = "alipay", _("支付宝（沙箱）")
    WECHATPAY = "wechatpay", _("微信支付（沙箱）")


class SandboxTrade(models.Model):
    """A trade as the gateway sees it. Status values follow Alipay's names for both channels."""

    class Status(models.TextChoices):
        WAIT_BUYER_PAY = "WAIT_BUYER_PAY", _("等待付款")
        TRADE_SUCCESS = "TRADE_SUCCESS", _("支付成功")
        TRADE_CLOSED = "TRADE_CLOSED", _("已关闭")

    channel = models.CharField(_("渠道"), max_length=16, choices=SandboxChannel.choices)
    out_trade_no = models.CharField(_("商户交易号"), max_length=64)
    amount = models.DecimalField(_("金额"), **MONEY)
    subject = models.CharField(_("商品描述"), max_length=256)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.WAIT_BUYER_PAY)
    trade_no = models.CharField(_("渠道交易号"), max_length=64, blank=True)
    paid_at = models.DateTimeField(_("支付时间"), null=True, blank=True)
    closed_at = models.DateTimeField(_("关闭时间"), null=True, blank=True)
    time_expire = models.DateTimeField(_("失效时间"), null=True, blank=True)
    notify_url = models.CharField(_("通知地址"), max_length=500, blank=True)
    faults = models.JSONField(_("注入的故障"), default=dict, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("沙箱交易")
        verbose_name_plural = _("沙箱交易")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "out_trade_no"], name="sandbox_trade_unique_out_trade_no")
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.out_trade_no}"


class SandboxRefund(models.Model):
    """A refund the gateway accepted. `channel` repeats the trade's so uniqueness can be enforced per channel."""

    class Status(models.TextChoices):
        PROCESSING = "PROCESSING", _("退款处理中")
        SUCCESS = "SUCCESS", _("退款成功")

    trade = models.ForeignKey(SandboxTrade, on_delete=models.PROTECT, related_name="refunds")
    channel = models.CharField(_("渠道"), max_length=16, choices=SandboxChannel.choices)
    out_refund_no = models.CharField(_("退款单号"), max_length=64)
    amount = models.DecimalField(_("退款金额"), **MONEY)
    reason = models.CharField(_("退款原因"), max_length=256, blank=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.PROCESSING)
    refund_no = models.CharField(_("渠道退款号"), max_length=64)
    succeeded_at = models.DateTimeField(_("退款成功时间"), null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("沙箱退款")
        verbose_name_plural = _("沙箱退款")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "out_refund_no"], name="sandbox_refund_unique_out_refund_no")
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.out_refund_no}"


class SandboxNotify(models.Model):
    """The outbox: one row per delivery the gateway owes the merchant, written with the event.

    `body` is what goes on the wire. `signed_body` is what the signature covers; it differs from
    `body` only when a fault tampered with the body after signing. WeChat Pay notifies are signed
    again at every attempt (fresh timestamp and nonce, same body and id), as the real platform does,
    so a retry hours later still falls inside the 5-minute window.
    """

    channel = models.CharField(_("渠道"), max_length=16, choices=SandboxChannel.choices)
    trade = models.ForeignKey(SandboxTrade, on_delete=models.PROTECT, related_name="notifies", null=True, blank=True)
    event = models.CharField(_("事件"), max_length=32)
    dedupe_key = models.CharField(_("通知ID"), max_length=64, db_index=True)
    target_url = models.CharField(_("目标地址"), max_length=500)
    body = models.TextField(_("报文"))
    signed_body = models.TextField(_("签名覆盖的报文"), blank=True)
    headers = models.JSONField(_("请求头"), default=dict, blank=True)
    corrupt_signature = models.BooleanField(_("损坏签名"), default=False)
    attempts = models.PositiveIntegerField(_("已投递次数"), default=0)
    next_attempt_at = models.DateTimeField(_("下次投递时间"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("投递成功时间"), null=True, blank=True)
    gave_up_at = models.DateTimeField(_("放弃时间"), null=True, blank=True)
    last_status = models.PositiveIntegerField(_("最近响应码"), null=True, blank=True)
    last_response = models.TextField(_("最近响应"), blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("沙箱通知")
        verbose_name_plural = _("沙箱通知（发件箱）")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["delivered_at", "gave_up_at", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.channel}:{self.event}:{self.dedupe_key}"
