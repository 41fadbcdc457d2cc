"""Reads of parcels that several screens and APIs share."""

from __future__ import annotations

from django.db.models import F, OuterRef, Prefetch, QuerySet

from orders.models import Order, OrderStatus

from .models import LogisticsException, Shipment, ShipmentLine, ShipmentStatus, TrackingEvent


def shipments_for_order(order: Order) -> QuerySet[Shipment] | list[Shipment]:
    """An order's parcels (cancelled ones left out), with lines and tracking, in three queries.

    An unpaid order has none, and costs no query.
    """
    if order.status == OrderStatus.PENDING_PAYMENT:
        return []
    return (
        Shipment.objects.filter(lines__order_id=order.pk)
        .exclude(status=ShipmentStatus.CANCELLED)
        .distinct()
        .select_related("warehouse")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=ShipmentLine.objects.filter(order_id=order.pk).select_related("order_line__sku", "sku"),
                to_attr="order_lines",
            ),
            Prefetch("tracking_events", queryset=TrackingEvent.objects.order_by("time", "pk"), to_attr="tracking"),
        )
        .order_by("created_at", "pk")
    )


def shipment_as_json(shipment: Shipment, *, with_tracking: bool = True) -> dict:
    """The public shape of a parcel (DESIGN.md, order JSON `shipments[]`)."""
    lines = getattr(shipment, "order_lines", None)
    if lines is None:
        lines = list(shipment.lines.select_related("order_line__sku", "sku"))
    body = {
        "shipment_no": shipment.shipment_no,
        "status": shipment.status,
        "status_display": shipment.get_status_display(),
        "warehouse": shipment.warehouse.code,
        "carrier": shipment.carrier,
        "tracking_no": shipment.tracking_no,
        "shipped_at": shipment.shipped_at.isoformat() if shipment.shipped_at else None,
        "delivered_at": shipment.delivered_at.isoformat() if shipment.delivered_at else None,
        "lines": [{"sku": line.item_code, "quantity": line.quantity} for line in lines],
    }
    if with_tracking:
        events = getattr(shipment, "tracking", None)
        if events is None:
            events = list(shipment.tracking_events.order_by("time", "pk"))
        body["tracking"] = [
            {"time": event.time.isoformat(), "state": event.state, "context": event.context} for event in events
        ]
    return body


def logistics_exceptions_open_for_order() -> QuerySet[LogisticsException]:
    """Open logistics cases on any parcel of the outer query's order: for Exists() over orders."""
    return LogisticsException.objects.filter(resolved_at__isnull=True, shipment__lines__order_id=OuterRef("pk"))


def shipments_for_warehouse(*, warehouse_id: int, status: str | None = None) -> QuerySet[Shipment]:
    """One warehouse's parcels, oldest first (a work queue), with all their lines (every order
    of a merged parcel) and tracking, for warehouse_shipment_as_json: three queries a page.
    """
    shipments = Shipment.objects.filter(warehouse_id=warehouse_id)
    if status:
        shipments = shipments.filter(status=status)
    return (
        shipments.select_related("warehouse")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=ShipmentLine.objects.select_related("order_line__sku", "sku").annotate(
                    order_no=F("order__order_no")
                ),
                to_attr="order_lines",
            ),
            Prefetch("tracking_events", queryset=TrackingEvent.objects.order_by("time", "pk"), to_attr="tracking"),
        )
        .order_by("created_at", "pk")
    )


def warehouse_shipment_as_json(shipment: Shipment) -> dict:
    """shipment_as_json plus the order numbers in the parcel (DESIGN.md, warehouse API)."""
    body = shipment_as_json(shipment)
    lines = getattr(shipment, "order_lines", None)
    if lines is None or (lines and not hasattr(lines[0], "order_no")):
        order_nos = Order.objects.filter(pk__in={line.order_id for line in shipment.lines.all()}).values_list(
            "order_no", flat=True
        )
    else:
        order_nos = [line.order_no for line in lines]
    body["order_nos"] = sorted(set(order_nos))
    return body
