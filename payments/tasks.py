"""Thin Celery tasks: take ids, call a service. Safe to run twice."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from orders.models import Order

from .errors import GatewayNotConfigured
from .gateways.base import GatewayError
from .models import Refund
from .services import payment_sync, payments_stale, refund_execute, refund_mark_failed, refunds_stuck
from .services.refunds import EXECUTE_REFUND_TASK

REFUND_RETRIES = 6


@shared_task(name=EXECUTE_REFUND_TASK, bind=True, max_retries=REFUND_RETRIES, acks_late=True)
def execute_refund(self, refund_id: int) -> str:
    """Send a refund; on a network error retry with backoff, reusing the same out_refund_no."""
    try:
        return refund_execute(refund_id=refund_id).status
    except GatewayNotConfigured as err:
        # No gateway to send it to (the sandbox was switched off): finance gets a 退款失败 case.
        refund_mark_failed(refund=Refund.objects.get(pk=refund_id), error=err.message)
        return "failed"
    except GatewayError as err:
        if self.request.retries >= REFUND_RETRIES or not err.retryable:
            refund_mark_failed(refund=Refund.objects.get(pk=refund_id), error=str(err))
            return "failed"
        raise self.retry(exc=err, countdown=min(30 * 2**self.request.retries, 3600)) from err


@shared_task
def sync_stale_payments(minutes: int = 5, limit: int = 200) -> int:
    """补单: ask the gateway about attempts that have waited `minutes` without a notify."""
    done = 0
    for order_id in payments_stale(older_than=timedelta(minutes=minutes), limit=limit):
        payment_sync(order=Order.objects.get(pk=order_id), close_unpaid=False)
        done += 1
    return done


@shared_task
def redeliver_refunds(minutes: int = 10, limit: int = 100) -> int:
    """Re-queue refunds stuck in approved/processing (a lost task, a broker outage)."""
    ids = refunds_stuck(older_than=timedelta(minutes=minutes), limit=limit)
    for refund_id in ids:
        execute_refund.delay(refund_id)
    return len(ids)
