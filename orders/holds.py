"""Hold and release (挂起 / 释放): keep a paid order back from the warehouse while the
customer makes up their mind, with a reason.

A held order is not allocated, put in a pick wave or merged into another parcel
(fulfillment.services checks `held_at`) until released. OMS_RELEASE_DELAY_MINUTES is the
automatic, short hold every order gets after approval; this is the manual, open-ended one.
Releasing queues the allocation: at once, or at the end of the release window if the order
is still inside it (the allocation clock catches it either way).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.errors import InvalidTransition, ValidationFailed
from oms.jobs import enqueue_on_commit

from .events import Actor, order_event_record
from .models import Order, OrderEvent, OrderStatus

HOLDABLE = (OrderStatus.PAID, OrderStatus.AWAITING_SHIPMENT)
HOLD_REASON_MAX_LENGTH = 200


def _lock(order: Order) -> Order:
    return Order.objects.select_for_update().get(pk=order.pk)


def order_hold(*, order: Order, actor: Actor, reason: str, now: datetime | None = None) -> Order:
    """挂起 a paid order that has not shipped (orders.hold_order). A reason is required."""
    actor.require("orders.hold_order")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(fields={"reason": [_("请填写挂起原因")]})
    if len(reason) > HOLD_REASON_MAX_LENGTH:
        raise ValidationFailed(fields={"reason": [_("挂起原因最多 %(n)d 个字") % {"n": HOLD_REASON_MAX_LENGTH}]})
    now = now or timezone.now()
    with transaction.atomic():
        order = _lock(order)
        if order.held_at is not None:
            raise InvalidTransition(_("订单已挂起"), details={"action": "hold", "held_at": order.held_at.isoformat()})
        if order.status not in HOLDABLE:
            raise InvalidTransition(
                _("只有已付款、未发货的订单可以挂起（当前状态「%(status)s」）")
                % {"status": order.get_status_display()},
                details={"status": order.status, "action": "hold"},
            )
        order.held_at, order.hold_reason, order.held_by = now, reason, actor.user
        order.save(update_fields=["held_at", "hold_reason", "held_by", "updated_at"])
        order_event_record(order=order, type=OrderEvent.Type.HELD, actor=actor, reason=reason)
    return order


def order_release(*, order: Order, actor: Actor, now: datetime | None = None) -> Order:
    """释放 a held order (orders.hold_order); a 待发货 order goes on to allocation."""
    actor.require("orders.hold_order")
    now = now or timezone.now()
    with transaction.atomic():
        order = _lock(order)
        if order.held_at is None:
            raise InvalidTransition(_("订单未挂起"), details={"status": order.status, "action": "release"})
        held_since, reason = order.held_at, order.hold_reason
        order.held_at, order.hold_reason, order.held_by = None, "", None
        order.save(update_fields=["held_at", "hold_reason", "held_by", "updated_at"])
        order_event_record(
            order=order,
            type=OrderEvent.Type.RELEASED,
            actor=actor,
            hold_reason=reason,
            held_minutes=int((now - held_since).total_seconds() // 60),
        )
        if order.status == OrderStatus.AWAITING_SHIPMENT:
            window_ends = (order.approved_at or now) + timedelta(minutes=settings.OMS_RELEASE_DELAY_MINUTES)
            wait = max(int((window_ends - now).total_seconds()), 0)
            enqueue_on_commit("fulfillment.tasks.allocate_order", order.pk, countdown=wait or None)
    return order
