"""Fulfillment's clock: parcels that need a person because of what did *not* happen.

- **No pickup** (`OMS_PICKUP_ALERT_HOURS`, 24): marked shipped, but the carrier never scanned
  it (no 揽收, no tracking event at all). Opens a `no_pickup` logistics exception (虚假发货
  risk: the parcel may never have been handed over). Once per parcel: a case customer
  service resolved is not opened again (the stale watch still covers the parcel).
- **Stale tracking** (`OMS_TRACKING_STALE_HOURS`, 48; seed 004 "超出两天不更新"): a shipped or
  exception parcel whose last scan (or, with none, its ship time) is older. Opens a `stale`
  exception. After customer service resolves one, the clock restarts from the resolution,
  so a parcel that stays silent is reported again one period later, not every run. A parcel
  with an open `no_pickup` case is not also reported stale: it is the same problem.
- **Ship-by overdue** (`OMS_SHIP_WITHIN_HOURS`, 48, set on each parcel as `ship_by` at
  allocation): nothing shipped, so this is not a logistics exception. `shipments_overdue(now)`
  is the workbench's list (the admin filter reads it), and the job puts one 超时未发货 entry on
  each order's timeline per parcel, so the order page says so and the count is reported.

Each job finds its candidates with one query, then claims them in bounded batches: the
parcels' orders and then the parcels themselves with `FOR UPDATE SKIP LOCKED` (the same
order as every fulfillment verb, orders before parcels, and never waiting, so it cannot
deadlock with a tracking push or a ship), re-checks the condition under the lock, and acts.
A row someone else holds is left for the next run. Runs may overlap; a second run finds
nothing left to do (and the partial unique constraint on open exceptions backs this up).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from oms.errors import InvalidTransition
from orders.events import Actor, order_event_record
from orders.models import Order, OrderEvent

from .models import OPEN_STATUSES, LogisticsException, Shipment, ShipmentLine, ShipmentStatus, TrackingEvent
from .services import logistics_exception_open, order_allocate, orders_awaiting_allocation

logger = logging.getLogger(__name__)
SS = ShipmentStatus
Kind = LogisticsException.Kind
BATCH_SIZE = 100
MAX_BATCHES = 20


@dataclass(frozen=True)
class ClockReport:
    """What one run did: `found` candidates claimed and acted on, `skipped` held by someone else."""

    found: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"found": self.found, "skipped": self.skipped}


# --- selectors ------------------------------------------------------------------------------


def _open_case(kind: str) -> Exists:
    return Exists(LogisticsException.objects.filter(shipment=OuterRef("pk"), kind=kind, resolved_at__isnull=True))


def shipments_without_pickup(*, now: datetime) -> QuerySet[Shipment]:
    """Shipped more than OMS_PICKUP_ALERT_HOURS ago and never scanned by the carrier, with no
    no_pickup case ever opened for it."""
    since = now - timedelta(hours=settings.OMS_PICKUP_ALERT_HOURS)
    return Shipment.objects.filter(status=SS.SHIPPED, picked_up_at__isnull=True, shipped_at__lte=since).filter(
        ~Exists(TrackingEvent.objects.filter(shipment=OuterRef("pk"))),
        ~Exists(LogisticsException.objects.filter(shipment=OuterRef("pk"), kind=Kind.NO_PICKUP)),
    )


def shipments_stale(*, now: datetime) -> QuerySet[Shipment]:
    """Shipped or exception parcels silent for OMS_TRACKING_STALE_HOURS: counted from the last
    scan (or the ship time), or from when customer service last resolved a stale case."""
    since = now - timedelta(hours=settings.OMS_TRACKING_STALE_HOURS)
    last_resolved = (
        LogisticsException.objects.filter(shipment=OuterRef("pk"), kind=Kind.STALE, resolved_at__isnull=False)
        .order_by("-resolved_at")
        .values("resolved_at")[:1]
    )
    return (
        Shipment.objects.filter(status__in=[SS.SHIPPED, SS.EXCEPTION], shipped_at__isnull=False)
        # necessary for the condition below, and served by the (status, last_tracking_at) index
        .filter(Q(last_tracking_at__lte=since) | Q(last_tracking_at__isnull=True, shipped_at__lte=since))
        .annotate(
            silent_since=Greatest(
                Coalesce(F("last_tracking_at"), F("shipped_at")),
                Coalesce(last_resolved, F("shipped_at")),
            )
        )
        .filter(silent_since__lte=since)
        .filter(~_open_case(Kind.STALE), ~_open_case(Kind.NO_PICKUP))
    )


def shipments_overdue(*, now: datetime | None = None) -> QuerySet[Shipment]:
    """Parcels not yet handed to a carrier whose ship-by deadline has passed (the workbench's
    超时未发货 list), most overdue first."""
    now = now or timezone.now()
    return Shipment.objects.filter(status__in=OPEN_STATUSES, ship_by__lt=now).order_by("ship_by", "pk")


def _overdue_not_recorded(*, now: datetime) -> QuerySet[Shipment]:
    recorded = (
        OrderEvent.objects.filter(order_id=OuterRef("order_id"), type=OrderEvent.Type.SHIP_OVERDUE)
        .annotate(shipment_no=KT("data__shipment_no"))
        .filter(shipment_no=OuterRef("shipment__shipment_no"))
    )
    unrecorded_line = ShipmentLine.objects.filter(shipment=OuterRef("pk")).filter(~Exists(recorded))
    return shipments_overdue(now=now).filter(Exists(unrecorded_line))


# --- claiming -------------------------------------------------------------------------------


def _sweep(
    candidates: Callable[[], QuerySet[Shipment]],
    act: Callable[[Shipment, list[Order]], None],
    *,
    batch_size: int,
    max_batches: int,
) -> ClockReport:
    """Claim candidates in primary-key batches (keyset, so a skipped row is not seen again in this
    run), one transaction per batch; call `act(shipment, its orders)` for each one still due."""
    found = skipped = 0
    after = 0
    for _batch in range(max_batches):
        ids = list(candidates().filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        after = ids[-1]
        with transaction.atomic():
            orders_of: dict[int, set[int]] = defaultdict(set)
            for shipment_id, order_id in ShipmentLine.objects.filter(shipment_id__in=ids).values_list(
                "shipment_id", "order_id"
            ):
                orders_of[shipment_id].add(order_id)
            wanted = sorted(set().union(*orders_of.values())) if orders_of else []
            orders = {
                order.pk: order
                for order in Order.objects.select_for_update(skip_locked=True).filter(pk__in=wanted).order_by("pk")
            }
            ready = [pk for pk in ids if orders_of[pk] and orders_of[pk] <= orders.keys()]
            claimed = list(
                candidates().select_for_update(skip_locked=True, of=("self",)).filter(pk__in=ready).order_by("pk")
            )
            for shipment in claimed:
                act(shipment, [orders[pk] for pk in sorted(orders_of[shipment.pk])])
            found += len(claimed)
            skipped += len(ids) - len(claimed)
        if len(ids) < batch_size:
            break
    return ClockReport(found=found, skipped=skipped)


def _last_event_text(shipment: Shipment) -> str:
    event = TrackingEvent.objects.filter(shipment=shipment).order_by("-time", "-pk").first()
    return event.context if event else ""


# --- the jobs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllocationReport:
    allocated: int = 0
    unallocatable: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"allocated": self.allocated, "unallocatable": list(self.unallocatable)}


def orders_allocate_pending(*, now: datetime | None = None, limit: int = 200) -> AllocationReport:
    """The allocation sweep: 待发货 orders with no parcel, past OMS_RELEASE_DELAY_MINUTES (their
    allocate_order message was lost, or the delay is what holds them), each through
    order_allocate (idempotent under the order's lock).

    An order no active warehouse can ship (its stock sits in a warehouse since deactivated) is
    reported and logged with its order number, and the sweep goes on: one such order must
    not hold up every order paid after it. It is tried again at the next run.
    """
    now = now or timezone.now()
    allocated, stuck = 0, []
    for order in orders_awaiting_allocation(now=now)[:limit]:
        try:
            if order_allocate(order=order, now=now):
                allocated += 1
        except InvalidTransition as err:
            logger.warning("allocation sweep: order %s cannot be allocated: %s %s", order.order_no, err, err.details)
            stuck.append(order.order_no)
    return AllocationReport(allocated=allocated, unallocatable=tuple(stuck))


def shipments_alert_no_pickup(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES
) -> ClockReport:
    """Open a no_pickup case for each parcel shipped OMS_PICKUP_ALERT_HOURS ago with no scan."""
    now = now or timezone.now()
    actor = Actor.system("alert_no_pickup")

    def act(shipment: Shipment, orders: list[Order]) -> None:
        hours = settings.OMS_PICKUP_ALERT_HOURS
        logistics_exception_open(
            shipment=shipment,
            kind=Kind.NO_PICKUP,
            last_event=f"发货 {hours} 小时后仍无揽收记录（{shipment.get_carrier_display()} {shipment.tracking_no}）",
            actor=actor,
        )

    return _sweep(lambda: shipments_without_pickup(now=now), act, batch_size=batch_size, max_batches=max_batches)


def shipments_alert_stale(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES
) -> ClockReport:
    """Open a stale case for each parcel whose tracking stopped for OMS_TRACKING_STALE_HOURS."""
    now = now or timezone.now()
    actor = Actor.system("alert_stale_tracking")

    def act(shipment: Shipment, orders: list[Order]) -> None:
        logistics_exception_open(shipment=shipment, kind=Kind.STALE, last_event=_last_event_text(shipment), actor=actor)

    return _sweep(lambda: shipments_stale(now=now), act, batch_size=batch_size, max_batches=max_batches)


def shipments_flag_overdue(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES
) -> ClockReport:
    """Put 超时未发货 on the timeline of each order of each parcel past its ship-by deadline,
    once per (order, parcel)."""
    now = now or timezone.now()
    actor = Actor.system("flag_overdue_shipments")

    def act(shipment: Shipment, orders: list[Order]) -> None:
        done = set(
            OrderEvent.objects.filter(
                order__in=orders, type=OrderEvent.Type.SHIP_OVERDUE, data__shipment_no=shipment.shipment_no
            ).values_list("order_id", flat=True)
        )
        for order in orders:
            if order.pk in done:
                continue
            order_event_record(
                order=order,
                type=OrderEvent.Type.SHIP_OVERDUE,
                actor=actor,
                reason=f"包裹 {shipment.shipment_no} 超过最晚发货时间仍未发出",
                shipment_no=shipment.shipment_no,
                warehouse_id=shipment.warehouse_id,
                ship_by=shipment.ship_by.isoformat(),
            )

    return _sweep(lambda: _overdue_not_recorded(now=now), act, batch_size=batch_size, max_batches=max_batches)


def shipments_overdue_count(*, now: datetime | None = None) -> int:
    """How many parcels are past their ship-by deadline right now (the workbench's badge)."""
    return shipments_overdue(now=now).count()
