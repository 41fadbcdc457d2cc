"""自动确认收货 across orders and fulfillment: an order whose parcel is in trouble waits for a person."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists

from fulfillment.selectors import logistics_exceptions_open_for_order
from orders.services import order_confirm_receipt_overdue


def order_confirm_receipt_due(*, now: datetime | None = None) -> int:
    """Complete the shipped orders whose time to confirm receipt has come, except those with an
    open logistics case on one of their parcels (拒签, 退回, 疑难件, no pickup, no update).

    The goods may never have reached the customer, so such an order waits until customer service
    resolves the case (reship, intercept, claim, ...), as an open after-sales request holds it;
    the next hourly run completes it once its time has come and nothing holds it.
    """
    return order_confirm_receipt_overdue(now=now, held=Exists(logistics_exceptions_open_for_order()))
