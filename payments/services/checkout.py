"""Starting a payment: open or reuse an attempt and ask the gateway how the customer pays."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.errors import InvalidTransition, ValidationFailed
from orders.models import Order, OrderEvent, OrderStatus
from orders.services import Actor, order_event_record

from ..errors import GatewayNotConfigured, GatewayUnavailable, PaymentDeadlinePassed
from ..gateways import get_gateway, is_configured
from ..gateways.base import GatewayError, PayRequest
from ..models import (
    GATEWAY_CHANNELS,
    Payment,
)
from .money import lock_order

logger = logging.getLogger(__name__)


# --- starting a payment ----------------------------------------------------------------


def payment_start(
    *, order: Order, channel: str, actor: Actor, now: datetime | None = None
) -> tuple[Payment, PayRequest]:
    """Open (or reuse) an attempt for `channel` and ask the gateway how the customer pays.

    Reuses the open attempt of the same channel, so a customer who clicks twice pays
    one trade. The gateway trade expires at the order's payment deadline. A channel with
    nowhere to pay (no credentials, sandbox off) raises GatewayNotConfigured and writes nothing.
    """
    now = now or timezone.now()
    if channel not in GATEWAY_CHANNELS:
        raise ValidationFailed(fields={"channel": [_("只能通过支付宝或微信支付发起在线支付")]})
    with transaction.atomic():
        order = lock_order(order.pk)
        if order.status != OrderStatus.PENDING_PAYMENT:
            raise InvalidTransition(
                _("订单当前状态为「%(s)s」，不能发起支付") % {"s": order.get_status_display()},
                details={"status": order.status, "action": "start_payment"},
            )
        if now >= order.payment_deadline:
            raise PaymentDeadlinePassed(details={"payment_deadline": order.payment_deadline.isoformat()})
        if channel not in order.storefront.allowed_payment_methods:
            raise ValidationFailed(fields={"channel": [_("本店铺不支持该支付方式")]})
        if not is_configured(channel):
            raise GatewayNotConfigured(channel=channel)
        payment = (
            order.payments.filter(channel=channel, status=Payment.Status.CREATED, amount=order.payable_total)
            .order_by("-created_at")
            .first()
        )
        if payment is None:
            attempt = order.payments.count() + 1
            payment = Payment.objects.create(
                order=order,
                channel=channel,
                out_trade_no=f"{order.order_no}P{attempt:02d}",
                amount=order.payable_total,
                expires_at=order.payment_deadline,
            )
            order_event_record(
                order=order,
                type=OrderEvent.Type.PAYMENT_STARTED,
                actor=actor,
                channel=channel,
                out_trade_no=payment.out_trade_no,
                amount=str(payment.amount),
            )
    try:
        request = get_gateway(channel).build_pay(
            out_trade_no=payment.out_trade_no,
            amount=payment.amount,
            subject=_order_subject(order),
            expires_at=order.payment_deadline,
        )
    except GatewayError as err:
        logger.warning("build_pay failed for %s: %s", payment.out_trade_no, err)
        raise GatewayUnavailable() from err
    return payment, request


def _order_subject(order: Order) -> str:
    names = [line.name for line in order.lines.all()[:3]]
    subject = "、".join(names) or order.order_no
    return f"订单{order.order_no} {subject}"[:120]
