from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import Order, OrderEvent, Storefront


def order_for_storefront(*, storefront: Storefront, order_no: str) -> Order:
    """A storefront sees only its own orders; anyone else's is a 404, not a 403."""
    return get_object_or_404(
        Order.objects.prefetch_related("lines"),
        storefront=storefront,
        order_no=order_no,
    )


def order_timeline(order: Order) -> QuerySet[OrderEvent]:
    return order.events.select_related("actor_user").order_by("created_at", "id")
