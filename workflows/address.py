"""Changing an order's shipping address before shipment, with its parcels."""

from __future__ import annotations

from django.db import transaction

from fulfillment.services import shipments_readdress
from orders import services as order_services
from orders.events import Actor
from orders.models import Order


def order_change_address(*, order: Order, actor: Actor, address: dict[str, str]) -> Order:
    """The order's new address (refused once any unit shipped); a parcel it shared with other
    orders of the old address (合单) no longer fits, so its units get a parcel of their own.
    Pending parcels read the address from their orders, so nothing else needs rewriting.
    """
    with transaction.atomic():
        order = order_services.order_change_address(order=order, actor=actor, address=address)
        shipments_readdress(order=order)
    return order
