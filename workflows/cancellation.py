"""Cancelling an order, with its refund when money was received."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from fulfillment.services import shipments_cancel_for_order
from orders import services as order_services
from orders.events import Actor
from orders.models import ZERO, ActorKind, Order
from payments.services import refund_request_full
from reminders.models import Purpose
from reminders.services import reminders_notify_orders


def order_cancel(*, order: Order, actor: Actor, reason: str, note: str = "") -> Order:
    """Cancel before anything ships: its parcels not yet handed over are cancelled, release stock, give back the coupon use, and when money
    was received, request a full refund through each original route in the same transaction.
    A failure anywhere rolls back all of it: no cancelled order keeps its money unrefunded.
    """
    with transaction.atomic():
        order = order_services.order_cancel(order=order, actor=actor, reason=reason, note=note, refund_follows=True)
        shipments_cancel_for_order(order=order, actor=actor)
        if order.paid_total > ZERO:
            refund_request_full(order=order, reason=_("订单取消"), actor=actor)
        if actor.kind == ActorKind.STAFF:  # the merchant cancelled: tell the customer (not their own cancel)
            reminders_notify_orders(order_ids=[order.pk], purpose=Purpose.CANCELLED_NOTICE)
    return order
