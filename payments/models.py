"""Payments. This issue only needs the refund request that cancelling a paid order
creates; the payments issue adds attempts, the notify inbox, execution and reconciliation.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField

MONEY = {"max_digits": 12, "decimal_places": 2}


class Refund(ConcurrentTransitionMixin, models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", _("待审批")
        APPROVED = "approved", _("已审批")
        PROCESSING = "processing", _("退款中")
        SUCCEEDED = "succeeded", _("退款成功")
        FAILED = "failed", _("退款失败")

    order = models.ForeignKey(
        "orders.Order",
        on_delete=models.PROTECT,
        related_name="refunds",
        verbose_name=_("订单"),
    )
    out_refund_no = models.CharField(_("退款单号"), max_length=64, unique=True)
    amount = models.DecimalField(_("退款金额"), **MONEY)
    reason = models.CharField(_("退款原因"), max_length=200)
    status = FSMField(
        _("状态"),
        max_length=16,
        choices=Status.choices,
        default=Status.REQUESTED,
        protected=True,
    )
    requested_by = models.CharField(_("发起方"), max_length=150)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("退款")
        verbose_name_plural = _("退款")
        ordering = ["-created_at"]
        permissions = [("approve_refund", _("可审批退款"))]

    def __str__(self) -> str:
        return self.out_refund_no
