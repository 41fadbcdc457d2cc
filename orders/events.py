"""The order timeline's one writer, and who acts.

Every app that changes an order (payments, reminders, fulfillment, after-sales, the
workflows) records what happened through `order_event_record` or, for set-based jobs,
`order_events_record_many`. Other apps read an order's events; none writes OrderEvent
rows by hand. `Actor` says who made a change; it is re-exported by orders.services.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oms.bulk import insert_new, insert_per_id
from oms.errors import require_permission

from .models import ActorKind, Order, OrderEvent, Storefront


@dataclass(frozen=True)
class Actor:
    """Who made a change: a staff user, a storefront, a gateway, or a system job."""

    kind: str
    label: str
    user: Any = None

    @classmethod
    def staff(cls, user) -> Actor:
        return cls(kind=ActorKind.STAFF, label=user.get_username(), user=user)

    @classmethod
    def storefront(cls, storefront: Storefront) -> Actor:
        return cls(kind=ActorKind.STOREFRONT, label=storefront.code)

    @classmethod
    def gateway(cls, channel: str) -> Actor:
        return cls(kind=ActorKind.GATEWAY, label=channel)

    @classmethod
    def system(cls, job: str) -> Actor:
        return cls(kind=ActorKind.SYSTEM, label=job)

    def require(self, permission: str) -> None:
        """Staff need `permission` ("app.codename"); storefronts, gateways and system jobs act
        under their own rules (a storefront only reaches its own orders, a gateway only
        with a verified notify), so they pass.
        """
        if self.kind == ActorKind.STAFF:
            require_permission(self.user, permission)


def _event(order_id: int, type: str, actor: Actor, from_status: str, to_status: str, reason: str, data) -> OrderEvent:
    return OrderEvent(
        order_id=order_id,
        type=type,
        from_status=from_status,
        to_status=to_status,
        actor_kind=actor.kind,
        actor_label=actor.label,
        actor_user=actor.user,
        reason=reason,
        data=data,
    )


def order_event_record(
    *,
    order: Order,
    type: str,
    actor: Actor,
    from_status: str = "",
    to_status: str = "",
    reason: str = "",
    **data: Any,
) -> OrderEvent:
    """The one writer of OrderEvent rows (with order_events_record_many for set-based jobs)."""
    event = _event(order.pk, type, actor, from_status, to_status, reason, data)
    insert_new([event])
    return event


def order_event_record_with_key(
    *, order: Order, event_id: int | None, type: str, actor: Actor, to_status: str = "", **data: Any
) -> OrderEvent:
    """order_event_record in the transaction that creates `order`, with a key drawn beforehand
    (oms.bulk.new_ids; None where none was): its INSERT travels with the transaction's next
    statement instead of costing a round trip of its own."""
    event = _event(order.pk, type, actor, "", to_status, "", data)
    event.pk = event_id
    insert_new([event], defer=True)
    return event


def order_events_record_many(
    *,
    order_ids: list[int],
    type: str,
    actor: Actor,
    from_status: str = "",
    to_status: str = "",
    reason: str = "",
    **data: Any,
) -> int:
    """The same event for many orders in one INSERT ... SELECT (no model instance per order)."""
    template = _event(0, type, actor, from_status, to_status, reason, data)
    return insert_per_id(template, per="order", ids=order_ids)


@dataclass(frozen=True)
class EventEntry:
    """One timeline entry of a sequence written together (order_events_record_sequence)."""

    type: str
    actor: Actor
    from_status: str = ""
    to_status: str = ""
    reason: str = ""
    data: dict[str, Any] | None = None


def order_events_record_sequence(*, order: Order, entries: list[EventEntry]) -> list[OrderEvent]:
    """Several events of one order, in this order, in one INSERT (e.g. paid, then auto-approved)."""
    events = [
        _event(order.pk, entry.type, entry.actor, entry.from_status, entry.to_status, entry.reason, entry.data or {})
        for entry in entries
    ]
    insert_new(events)
    return events
