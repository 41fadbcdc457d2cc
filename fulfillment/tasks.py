"""Thin Celery tasks for fulfillment; each loads rows by id and calls one service."""

from __future__ import annotations

from celery import shared_task

from orders.models import Order

from .clock import (
    orders_allocate_pending,
    shipments_alert_no_pickup,
    shipments_alert_stale,
    shipments_flag_overdue,
    shipments_overdue_count,
)
from .services import order_allocate


@shared_task(name="fulfillment.tasks.allocate_order")
def allocate_order(order_id: int) -> int:
    order = Order.objects.filter(pk=order_id).first()
    return len(order_allocate(order=order)) if order is not None else 0


@shared_task(name="fulfillment.tasks.allocate_pending_orders")
def allocate_pending_orders() -> dict:
    """Periodic: allocate 待发货 orders whose message was lost or whose release delay passed."""
    return orders_allocate_pending().as_dict()


@shared_task(name="fulfillment.tasks.alert_parcels_without_pickup")
def alert_parcels_without_pickup() -> dict[str, int]:
    """Periodic: a no_pickup case for parcels shipped OMS_PICKUP_ALERT_HOURS ago and never scanned."""
    return shipments_alert_no_pickup().as_dict()


@shared_task(name="fulfillment.tasks.alert_stale_tracking")
def alert_stale_tracking() -> dict[str, int]:
    """Periodic: a stale case for parcels with no tracking update for OMS_TRACKING_STALE_HOURS."""
    return shipments_alert_stale().as_dict()


@shared_task(name="fulfillment.tasks.flag_overdue_shipments")
def flag_overdue_shipments() -> dict[str, int]:
    """Periodic: 超时未发货 on the timeline of orders whose parcel missed its ship-by deadline."""
    report = shipments_flag_overdue().as_dict()
    return {**report, "overdue": shipments_overdue_count()}
