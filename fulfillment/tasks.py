"""Thin Celery tasks for fulfillment; each loads rows by id and calls one service."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from orders.models import Order

from .clock import (
    orders_allocate_pending,
    shipments_alert_no_pickup,
    shipments_alert_stale,
    shipments_flag_overdue,
    shipments_overdue_count,
)
from .sandbox import sandbox_enabled, sandbox_push_deliver
from .services import order_allocate
from .tracking import tracking_subscribe_shipment, tracking_subscriptions_due


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


@shared_task(name="fulfillment.tasks.subscribe_tracking")
def subscribe_tracking(shipment_id: int) -> int:
    """Subscribe a parcel's pending tracking subscriptions (queued by shipping, after commit)."""
    return tracking_subscribe_shipment(shipment_id=shipment_id)


@shared_task(name="fulfillment.tasks.redeliver_tracking_subscriptions")
def redeliver_tracking_subscriptions() -> int:
    """Periodic: queue again the parcels whose subscription is still pending (lost task, provider down)."""
    due = tracking_subscriptions_due()
    for shipment_id in due:
        subscribe_tracking.delay(shipment_id)
    return len(due)


@shared_task(name="fulfillment.tasks.sandbox_carrier_push", ignore_result=True)
def sandbox_carrier_push(tracking_no: str, step: int, started_at: str, tries: int = 1) -> None:
    """The sandbox carrier's next scan of one parcel; schedules the one after. A no-op when the
    sandbox carrier is off."""
    if not sandbox_enabled():
        return
    upcoming = sandbox_push_deliver(
        tracking_no=tracking_no, step=step, started_at=datetime.fromisoformat(started_at), tries=tries
    )
    if upcoming is not None:
        sandbox_carrier_push.apply_async(
            args=[tracking_no, upcoming.step, started_at, upcoming.tries], countdown=upcoming.countdown
        )
