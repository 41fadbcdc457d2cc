"""Carrier tracking: receive Kuaidi100's pushes and apply them to parcels, and subscribe parcels.

A push is verified (MD5 of param + KUAIDI100_SALT), stored raw in the inbox (TrackingPush),
matched to its parcel by (com, nu), and applied under the parcel's row lock in one
transaction: new scans become TrackingEvents, the parcel's tracking_state / last_tracking_at /
picked_up_at move, and the parcel itself moves (签收 → delivered, 疑难 → exception, 拒签 →
refused, 退回 → exception, 退签 → back in the warehouse).

The state never moves backwards (`state_advances`): a stale push (its newest scan older than
one already applied) or a lower-ranked state adds its scans and changes nothing else. The
forward path is 揽收 < 在途 = 转投 < 派件 < 签收; the return path is 拒签 < 退回 < 退签 and
outranks the forward path except 签收; 签收 and 退签 are final. 疑难 may interrupt any state
that is not final, and any newer state may follow it.

Lock order: the orders of the parcel first, then the parcel (as fulfillment.services does),
but only for a push that will touch an order; a plain 在途 scan locks the parcel alone.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_fsm import can_proceed

from oms.jobs import enqueue_on_commit
from orders.events import Actor, order_event_record
from orders.models import Order, OrderEvent
from orders.services import order_fulfillment_record, orders_lock

from . import kuaidi100
from .kuaidi100 import Push, PushInvalid
from .models import (
    Carrier,
    LogisticsException,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
    TrackingEvent,
    TrackingPush,
    TrackingState,
    TrackingSubscription,
)
from .sandbox import sandbox_parcel_accept
from .services import logistics_exception_open, shipment_deliver, shipment_return

logger = logging.getLogger(__name__)

SS = ShipmentStatus
TS = TrackingState
ACTOR = Actor.gateway("kuaidi100")
SUBSCRIBE_TASK = "fulfillment.tasks.subscribe_tracking"
# A subscription still failing after this many attempts is given up (status failed).
SUBSCRIBE_MAX_ATTEMPTS = 48
# An `abort` re-subscribes the parcel while it has fewer subscriptions for its number than this;
# after that the parcel gets a logistics exception of kind `aborted`.
ABORT_RESUBSCRIBE_LIMIT = 2

RANK: dict[str, int] = {
    TS.PICKED_UP: 1,
    TS.IN_TRANSIT: 2,
    TS.TRANSFERRED: 2,
    TS.OUT_FOR_DELIVERY: 3,
    TS.REFUSED: 5,
    TS.RETURNING: 6,
    TS.DELIVERED: 9,
    TS.RETURNED_SIGNED: 9,
}
FINAL = {TS.DELIVERED, TS.RETURNED_SIGNED}
RETURN_PATH = {TS.REFUSED, TS.RETURNING, TS.RETURNED_SIGNED}
# Pushes in these states (or abort / a corrected carrier) write to the parcel's orders.
TOUCHES_ORDERS = {TS.PROBLEM, TS.DELIVERED, TS.REFUSED, TS.RETURNING, TS.RETURNED_SIGNED}


def state_advances(current: str, new: str) -> bool:
    """May a parcel in tracking state `current` move to `new`? (Equal counts: nothing moves back.)"""
    if not new or current in FINAL:
        return False
    if new == TS.PROBLEM or current in ("", TS.PROBLEM):
        return True
    if current in RETURN_PATH and new not in RETURN_PATH:
        return False
    return RANK[new] >= RANK[current]


@dataclass(frozen=True)
class Applied:
    events_added: int
    state_moved: bool


# --- receiving pushes ---------------------------------------------------------------------


def tracking_push_receive(*, param: str, sign: str) -> tuple[int, dict]:
    """Handle one push. Returns (HTTP status, JSON body) as Kuaidi100 expects them.

    A bad signature: 400, and nothing but a `rejected` inbox row. A well-signed push that cannot
    be read, or names no parcel of ours, is kept (`unmatched`) and acknowledged, since sending it
    again would not help. A push already applied (same param, same parcel) is `duplicate`.
    """
    digest = hashlib.sha256(param.encode("utf-8")).hexdigest()
    if not kuaidi100.sign_valid(param=param, sign_value=sign, salt=settings.KUAIDI100_SALT):
        TrackingPush.objects.create(param=param, sign=sign[:64], digest=digest, status=TrackingPush.Status.REJECTED)
        return 400, kuaidi100.error_body("签名验证失败 (bad sign)")
    try:
        push = kuaidi100.parse_push(param)
    except PushInvalid as error:
        logger.warning("kuaidi100 push unreadable: %s", error.message)
        TrackingPush.objects.create(param=param, sign=sign, digest=digest, status=TrackingPush.Status.UNMATCHED)
        return 200, kuaidi100.ACK
    with transaction.atomic():
        shipment = _lock_parcel(push)
        if shipment is None:
            TrackingPush.objects.create(param=param, sign=sign, digest=digest, status=TrackingPush.Status.UNMATCHED)
            return 200, kuaidi100.ACK
        seen = TrackingPush.objects.filter(shipment=shipment, digest=digest, status=TrackingPush.Status.APPLIED)
        if seen.exists():
            status, applied = TrackingPush.Status.DUPLICATE, Applied(events_added=0, state_moved=False)
        else:
            status, applied = TrackingPush.Status.APPLIED, tracking_push_apply(shipment=shipment, push=push)
        TrackingPush.objects.create(
            param=param,
            sign=sign,
            digest=digest,
            status=status,
            shipment=shipment,
            events_added=applied.events_added,
        )
    return 200, kuaidi100.ACK


def _parcels_named(push: Push):
    """Live parcels of (com, nu). With the sandbox carrier off, its pushes match nothing."""
    carriers = [c for c in push.carriers if c != Carrier.SANDBOX or settings.OMS_CARRIER_SANDBOX_ENABLED]
    return Shipment.objects.filter(tracking_no=push.nu, carrier__in=carriers).exclude(status=SS.CANCELLED)


def _pick(parcels: Iterable[Shipment], push: Push) -> Shipment | None:
    by_carrier = {parcel.carrier: parcel for parcel in parcels}
    return next((by_carrier[c] for c in push.carriers if c in by_carrier), None)


def _lock_parcel(push: Push) -> Shipment | None:
    """The parcel of (com, nu), locked; its orders locked first if the push will write to them."""
    touches_orders = push.state in TOUCHES_ORDERS or push.status == "abort" or bool(push.auto_check and push.com_new)
    if not touches_orders:
        return _pick(_parcels_named(push).select_for_update(), push)
    found = _pick(_parcels_named(push), push)
    if found is None:
        return None
    order_ids = sorted(set(ShipmentLine.objects.filter(shipment_id=found.pk).values_list("order_id", flat=True)))
    orders_lock(order_ids=order_ids)
    return Shipment.objects.select_for_update().get(pk=found.pk)


def tracking_push_apply(*, shipment: Shipment, push: Push) -> Applied:
    """Apply a parsed push to a parcel. The caller holds the parcel's lock (and, for a push in
    TOUCHES_ORDERS, its orders' locks) inside its transaction.
    """
    if push.auto_check and push.com_new and push.com_new != shipment.carrier:
        _carrier_corrected(shipment, push)

    known = set(TrackingEvent.objects.filter(shipment=shipment).values_list("time", "context"))
    new_events = {}
    for scan in push.scans:
        if (scan.time, scan.context) not in known:
            new_events.setdefault(
                (scan.time, scan.context),
                TrackingEvent(
                    shipment=shipment, time=scan.time, state=scan.state, context=scan.context, area=scan.area
                ),
            )
    if new_events:
        TrackingEvent.objects.bulk_create(list(new_events.values()), ignore_conflicts=True)

    fields = set()
    newest = push.newest_scan_at
    previous_newest = shipment.last_tracking_at
    fresh = previous_newest is None or newest is None or newest >= previous_newest
    if newest is not None and (previous_newest is None or newest > previous_newest):
        shipment.last_tracking_at = newest
        fields.add("last_tracking_at")
    if push.scans:
        pickups = [scan.time for scan in push.scans if scan.state == TS.PICKED_UP]
        first = min(pickups or [scan.time for scan in push.scans])  # any scan means the carrier has it
        if shipment.picked_up_at is None or first < shipment.picked_up_at:
            shipment.picked_up_at = first
            fields.add("picked_up_at")
    moved = fresh and push.state != shipment.tracking_state and state_advances(shipment.tracking_state, push.state)
    if moved:
        shipment.tracking_state = push.state
        fields.add("tracking_state")
    if fields:
        shipment.save(update_fields=[*sorted(fields), "updated_at"])
    if moved:
        _move_parcel(shipment, push)
    if push.status == "abort" and shipment.status in (SS.SHIPPED, SS.EXCEPTION):
        _aborted(shipment, push)
    return Applied(events_added=len(new_events), state_moved=moved)


def _scan_time(push: Push, state: str) -> datetime:
    """When the parcel reached `state`: its newest scan in that state, else the newest scan."""
    times = [scan.time for scan in push.scans if scan.state == state] or [scan.time for scan in push.scans]
    return max(times, default=None) or timezone.now()


def _last_words(push: Push) -> str:
    newest = max(push.scans, key=lambda scan: scan.time, default=None)
    return newest.context if newest else push.message


def _move_parcel(shipment: Shipment, push: Push) -> None:
    """The parcel's own state machine follows its tracking state. A transition the parcel cannot
    take (a 签收 for a parcel staff already marked returned) is skipped: a push never fails.
    """
    state = push.state
    if state == TS.DELIVERED:
        if can_proceed(shipment.deliver):
            shipment_deliver(shipment=shipment, actor=ACTOR, at=_scan_time(push, TS.DELIVERED))
        return
    if state == TS.PROBLEM:
        _flag(shipment)
        logistics_exception_open(
            shipment=shipment, kind=LogisticsException.Kind.PROBLEM, last_event=_last_words(push), actor=ACTOR
        )
    elif state == TS.REFUSED:
        if can_proceed(shipment.refuse):
            shipment.refuse()
            shipment.save()
        logistics_exception_open(
            shipment=shipment, kind=LogisticsException.Kind.REFUSED, last_event=_last_words(push), actor=ACTOR
        )
    elif state == TS.RETURNING:
        _flag(shipment)
        logistics_exception_open(
            shipment=shipment, kind=LogisticsException.Kind.RETURNED, last_event=_last_words(push), actor=ACTOR
        )
    elif state == TS.RETURNED_SIGNED:
        # 退签: the carrier's proof that our warehouse signed for the parcel, trusted as we trust
        # its 签收. The units go back on hand and a refused COD order is cancelled; the open
        # `returned` case lets customer service check the goods and reship or refund.
        if can_proceed(shipment.return_to_sender):
            shipment_return(shipment=shipment, actor=ACTOR, at=_scan_time(push, TS.RETURNED_SIGNED))
        logistics_exception_open(
            shipment=shipment, kind=LogisticsException.Kind.RETURNED, last_event=_last_words(push), actor=ACTOR
        )


def _flag(shipment: Shipment) -> None:
    if shipment.status == SS.SHIPPED:
        shipment.flag_exception()
        shipment.save()


def _aborted(shipment: Shipment, push: Push) -> None:
    """Kuaidi100 stopped tracking (status=abort: no record for days, or no change for long).
    Subscribe again once; after that a person looks at it."""
    tries = TrackingSubscription.objects.filter(
        shipment=shipment, carrier=shipment.carrier, tracking_no=shipment.tracking_no
    ).count()
    if tries < ABORT_RESUBSCRIBE_LIMIT:
        TrackingSubscription.objects.create(
            shipment=shipment, carrier=shipment.carrier, tracking_no=shipment.tracking_no
        )
        enqueue_on_commit(SUBSCRIBE_TASK, shipment.pk)
        return
    logistics_exception_open(
        shipment=shipment,
        kind=LogisticsException.Kind.ABORTED,
        last_event=push.message or _last_words(push),
        actor=ACTOR,
    )


def _carrier_corrected(shipment: Shipment, push: Push) -> None:
    """autoCheck: Kuaidi100 found the number belongs to another carrier (comNew) and tracks it
    there. The parcel takes the corrected code; old and new go on each order's timeline."""
    clash = (
        Shipment.objects.filter(carrier=push.com_new, tracking_no=shipment.tracking_no)
        .exclude(pk=shipment.pk)
        .exclude(status=SS.CANCELLED)
    )
    if clash.exists():
        logger.warning("kuaidi100 autoCheck to %s clashes with another parcel: %s", push.com_new, shipment)
        return
    old = {"carrier": shipment.carrier, "tracking_no": shipment.tracking_no}
    new = {"carrier": push.com_new, "tracking_no": shipment.tracking_no}
    shipment.carrier = push.com_new
    shipment.save(update_fields=["carrier", "updated_at"])
    order_ids = ShipmentLine.objects.filter(shipment_id=shipment.pk).values_list("order_id", flat=True)
    for order in Order.objects.filter(pk__in=list(order_ids)).order_by("pk"):
        order_event_record(
            order=order,
            type=OrderEvent.Type.TRACKING_CORRECTED,
            actor=ACTOR,
            shipment_no=shipment.shipment_no,
            old=old,
            new=new,
            source="kuaidi100_autocheck",
        )
        if (order.carrier, order.tracking_no) == (old["carrier"], old["tracking_no"]):
            order_fulfillment_record(
                order=order,
                actor=ACTOR,
                fulfillment_status=order.fulfillment_status,
                carrier=new["carrier"],
                tracking_no=new["tracking_no"],
            )


# --- subscribing ----------------------------------------------------------------------------


def push_url() -> str:
    """Where Kuaidi100 (and the sandbox carrier) push: OMS_SITE_URL + the push path."""
    return settings.OMS_SITE_URL.rstrip("/") + kuaidi100.PUSH_PATH


def _settle(subscription: TrackingSubscription, *, ok: bool, error: str = "", give_up: bool = False) -> None:
    """Record an attempt on a still pending row (a concurrent attempt may have settled it)."""
    now = timezone.now()
    changes: dict = {"attempts": F("attempts") + 1, "last_error": error[:500]}
    if ok:
        changes.update(status=TrackingSubscription.Status.SUBSCRIBED, subscribed_at=now)
    elif give_up or subscription.attempts + 1 >= SUBSCRIBE_MAX_ATTEMPTS:
        changes.update(status=TrackingSubscription.Status.FAILED)
    TrackingSubscription.objects.filter(pk=subscription.pk, status=TrackingSubscription.Status.PENDING).update(
        **changes
    )


def tracking_subscribe(*, subscription: TrackingSubscription) -> bool:
    """Subscribe one outbox row at Kuaidi100 (form POST to KUAIDI100_POLL_URL), or hand a
    `sandbox` parcel to the sandbox carrier. Returns True when subscribed.

    200 and 501 (already subscribed) count as subscribed. Any other answer, a timeout or a
    network error leaves the row pending for the redelivery job, until SUBSCRIBE_MAX_ATTEMPTS.
    A row for a number since corrected is given up. No lock is held over the HTTP call: a
    second subscribe of the same number is harmless (501).
    """
    if subscription.status != TrackingSubscription.Status.PENDING:
        return subscription.status == TrackingSubscription.Status.SUBSCRIBED
    shipment = subscription.shipment
    if shipment.status == SS.CANCELLED or (shipment.carrier, shipment.tracking_no) != (
        subscription.carrier,
        subscription.tracking_no,
    ):
        _settle(subscription, ok=False, error="superseded: the parcel's number changed", give_up=True)
        return False
    if subscription.carrier == Carrier.SANDBOX:
        if not settings.OMS_CARRIER_SANDBOX_ENABLED:
            _settle(subscription, ok=False, error="the sandbox carrier is off", give_up=True)
            return False
        sandbox_parcel_accept(tracking_no=subscription.tracking_no)
        _settle(subscription, ok=True)
        return True
    if not settings.KUAIDI100_KEY or not settings.KUAIDI100_SALT:
        _settle(subscription, ok=False, error="KUAIDI100_KEY or KUAIDI100_SALT is not set")
        return False
    form = kuaidi100.subscribe_form(
        company=subscription.carrier,
        number=subscription.tracking_no,
        key=settings.KUAIDI100_KEY,
        callback_url=push_url(),
        salt=settings.KUAIDI100_SALT,
        phone=shipment.customer_mobile if subscription.carrier == Carrier.SHUNFENG else "",
    )
    answer = kuaidi100.subscribe_post(url=settings.KUAIDI100_POLL_URL, form=form, timeout=settings.GATEWAY_HTTP_TIMEOUT)
    if not answer.ok:
        logger.warning("kuaidi100 subscribe %s failed: %s %s", subscription, answer.return_code, answer.message)
    _settle(subscription, ok=answer.ok, error="" if answer.ok else f"{answer.return_code} {answer.message}".strip())
    return answer.ok


def tracking_subscribe_shipment(*, shipment_id: int) -> int:
    """Subscribe a parcel's pending outbox rows (what shipping queues). Returns rows subscribed."""
    pending = TrackingSubscription.objects.filter(
        shipment_id=shipment_id, status=TrackingSubscription.Status.PENDING
    ).select_related("shipment")
    return sum(tracking_subscribe(subscription=row) for row in pending.order_by("pk"))


def tracking_subscriptions_due(*, now: datetime | None = None, grace: timedelta = timedelta(minutes=5)) -> list[int]:
    """Parcels with a subscription still pending `grace` after it was written (its task was lost
    or the provider failed): the ids the redelivery job queues again."""
    now = now or timezone.now()
    return list(
        TrackingSubscription.objects.filter(status=TrackingSubscription.Status.PENDING, created_at__lte=now - grace)
        .order_by("shipment_id")
        .values_list("shipment_id", flat=True)
        .distinct()[:500]
    )
