"""The gateway check (补单): ask the gateway about open attempts and apply what it says."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from orders.models import Order

from ..errors import GatewayNotConfigured
from ..gateways import get_gateway
from ..gateways.base import GatewayError
from ..models import (
    GATEWAY_CHANNELS,
    Payment,
)
from .money import lock_order
from .notify import apply_success

logger = logging.getLogger(__name__)


# --- gateway check (补单) ----------------------------------------------------------------


@dataclass
class SyncReport:
    applied: int = 0
    closed: int = 0
    still_open: int = 0
    errors: int = 0


def payment_sync(*, order: Order, close_unpaid: bool = True) -> SyncReport:
    """Ask the gateway about every open attempt of `order`.

    A paid attempt is applied exactly like a notify; an unpaid one is closed at the
    gateway (and locally) when `close_unpaid`, so it cannot be paid after we give up.
    """
    report = SyncReport()
    open_attempts = list(order.payments.filter(status=Payment.Status.CREATED, channel__in=GATEWAY_CHANNELS))
    for payment in open_attempts:
        try:
            gateway = get_gateway(payment.channel)
            state = gateway.query(out_trade_no=payment.out_trade_no)
            if not state.paid and close_unpaid:
                result = gateway.close(out_trade_no=payment.out_trade_no)
                if result.already_paid:
                    state = gateway.query(out_trade_no=payment.out_trade_no)
                elif result.closed:
                    with transaction.atomic():
                        lock_order(payment.order_id)
                        locked = Payment.objects.select_for_update().get(pk=payment.pk)
                        if locked.status == Payment.Status.CREATED:
                            locked.close(at=timezone.now())
                            locked.last_synced_at = timezone.now()
                            locked.save()
                    report.closed += 1
                    continue
        except (GatewayError, GatewayNotConfigured) as err:
            # Not configured: an attempt opened while the sandbox was on, asked after it was
            # switched off. Nobody can say whether it was paid, so it stays open, counted here.
            logger.warning("payment_sync: %s %s", payment.out_trade_no, err)
            report.errors += 1
            continue
        if state.paid:
            with transaction.atomic():
                apply_success(
                    channel=payment.channel,
                    out_trade_no=payment.out_trade_no,
                    amount=state.amount if state.amount is not None else payment.amount,
                    gateway_trade_no=state.gateway_trade_no,
                    paid_at=state.paid_at,
                    merchant_id=state.merchant_id or gateway.merchant_id,
                    app_id=state.app_id or gateway.app_id,
                    inbox=None,
                    source="query",
                )
            report.applied += 1
        else:
            Payment.objects.filter(pk=payment.pk).update(last_synced_at=timezone.now())
            report.still_open += 1
    return report
