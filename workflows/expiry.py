"""超时自动关闭: the timeout sweep across orders, payments and reminders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Exists
from django.utils import timezone

from orders.selectors import orders_past_deadline
from orders.services import orders_close_timed_out
from payments.selectors import payments_open_at_gateway, payments_paid_or_open
from payments.services import payment_sync
from reminders.services import reminders_notify_closed


@dataclass
class CloseReport:
    closed: int = 0
    checked_with_gateway: int = 0
    batches: int = 0


def order_close_expired(
    *, now: datetime | None = None, batch_size: int = 500, max_batches: int = 20, sync_limit: int = 50
) -> CloseReport:
    """Cancel unpaid orders past their deadline (plus the grace period), set-based.

    1. Orders that still have an open gateway attempt are checked with the gateway first
       (payment_sync): a payment found there is applied instead of closing; an unpaid
       attempt is closed at the gateway so it can no longer be paid.
    2. The rest (no money, no open attempt) are closed in batches by orders_close_timed_out,
       and each batch queues its 订单已关闭 notices in the same transaction.
    Cash-on-delivery orders are never closed here; they wait for the COD confirmation.
    """
    now = now or timezone.now()
    report = CloseReport()
    expired = orders_past_deadline(now=now)
    for order in expired.filter(Exists(payments_open_at_gateway())).order_by("payment_deadline")[:sync_limit]:
        payment_sync(order=order, close_unpaid=True)
        report.checked_with_gateway += 1

    closable = expired.filter(~Exists(payments_paid_or_open()))
    for _batch in range(max_batches):
        with transaction.atomic():
            ids = orders_close_timed_out(
                candidates=closable,
                now=now,
                batch_size=batch_size,
                on_closed=lambda closed: reminders_notify_closed(order_ids=closed, now=now),
            )
        report.closed += len(ids)
        report.batches += 1
        if len(ids) < batch_size:
            break
    return report
