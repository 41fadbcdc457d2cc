from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import Order, OrderEvent, OrderStatus, PaymentMethod, Storefront


def order_for_storefront(*, storefront: Storefront, order_no: str) -> Order:
    """A storefront sees only its own orders; anyone else's is a 404, not a 403."""
    return get_object_or_404(
        Order.objects.prefetch_related("lines"),
        storefront=storefront,
        order_no=order_no,
    )


def order_timeline(order: Order) -> QuerySet[OrderEvent]:
    return order.events.select_related("actor_user").order_by("created_at", "id")


def transition_sources(method) -> set[str]:
    """The source states a django-fsm transition declares: the one place the sweep reads them."""
    return set(method._django_fsm.transitions)


def orders_past_deadline(*, now: datetime) -> QuerySet[Order]:
    """Unpaid orders past their payment deadline plus the grace period, in the cancel
    transition's declared source states. Cash-on-delivery orders never time out: they wait
    for the COD confirmation.
    """
    cutoff = now - timedelta(seconds=settings.OMS_CLOSE_GRACE_SECONDS)
    sources = transition_sources(Order.cancel) & {OrderStatus.PENDING_PAYMENT}
    return Order.objects.filter(status__in=sources, payment_deadline__lte=cutoff).exclude(
        payment_method=PaymentMethod.COD
    )
