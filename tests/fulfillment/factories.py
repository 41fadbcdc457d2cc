"""Ship an order the way the warehouse does: allocate it, then hand every parcel to the carrier."""

from __future__ import annotations

import itertools

from fulfillment.models import Shipment
from fulfillment.services import order_allocate, shipment_ship
from orders.events import Actor
from orders.models import Order
from orders.services import order_mark_shipped

_numbers = itertools.count(1)


def ship_whole_order(order: Order, *, actor: Actor, carrier: str = "shunfeng") -> Order:
    """Allocate a 待发货 order and ship all of its open parcels (a tracking number each)."""
    order_allocate(order=order)
    parcels = Shipment.objects.filter(lines__order_id=order.pk, status="pending").distinct()
    if not parcels:
        # Nothing to hand over (not 待发货): the order's state machine says why.
        return order_mark_shipped(order=order, actor=actor)
    for shipment in parcels:
        shipment_ship(shipment=shipment, actor=actor, carrier=carrier, tracking_no=f"SF{next(_numbers):012d}")
    order.refresh_from_db()
    return order
