"""Stock reservation, release and consumption.

Stock rows are always locked in primary-key order (`SELECT ... FOR UPDATE ORDER BY id`),
so two orders touching the same SKUs queue instead of deadlocking. The number of
queries does not depend on the number of lines: one locking read, one bulk update,
one bulk insert.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.db.models import Case, F, IntegerField, Sum, Value, When
from django.utils import timezone

from oms.errors import InsufficientStock

from .models import Reservation, Sku, StockLevel


@dataclass
class StockPlan:
    """Which stock rows will give how many units to each SKU; built under lock."""

    levels: dict[int, StockLevel]
    takes: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # sku_id -> [(level_id, qty)]


def stock_lock_and_plan(*, demand: Mapping[Sku, int]) -> StockPlan:
    """Lock the SKUs' stock rows and plan the reservation, or raise InsufficientStock.

    Warehouses are drawn in primary-key order; a line may be split across them.
    """
    levels = list(
        StockLevel.objects.select_for_update(of=("self",))
        .filter(sku__in=list(demand), warehouse__active=True)
        .order_by("pk")
    )
    by_sku: dict[int, list[StockLevel]] = defaultdict(list)
    for level in levels:
        by_sku[level.sku_id].append(level)

    plan = StockPlan(levels={level.pk: level for level in levels})
    shortages: dict[str, dict[str, int]] = {}
    for sku, wanted in demand.items():
        available = sum(max(level.available, 0) for level in by_sku[sku.pk])
        if available < wanted:
            shortages[sku.code] = {"requested": wanted, "available": available}
            continue
        remaining = wanted
        takes = []
        for level in by_sku[sku.pk]:
            take = min(level.available, remaining)
            if take > 0:
                takes.append((level.pk, take))
                remaining -= take
            if remaining == 0:
                break
        plan.takes[sku.pk] = takes
    if shortages:
        raise InsufficientStock(details=shortages)
    return plan


def stock_reserve(*, plan: StockPlan, line_ids_by_sku: Mapping[int, int]) -> list[Reservation]:
    """Apply a plan made by `stock_lock_and_plan` in the same transaction."""
    reservations = []
    touched = []
    now = timezone.now()
    for sku_id, takes in plan.takes.items():
        for level_id, qty in takes:
            level = plan.levels[level_id]
            level.reserved += qty
            level.updated_at = now
            touched.append(level)
            reservations.append(
                Reservation(
                    order_line_id=line_ids_by_sku[sku_id],
                    stock_level_id=level_id,
                    quantity=qty,
                )
            )
    StockLevel.objects.bulk_update(touched, ["reserved", "updated_at"])
    return Reservation.objects.bulk_create(reservations)


def _settle(*, order_line_ids: Iterable[int], to_status: str, deduct_on_hand: bool) -> int:
    reservations = list(
        Reservation.objects.filter(order_line_id__in=list(order_line_ids), status=Reservation.Status.ACTIVE)
    )
    if not reservations:
        return 0
    per_level: dict[int, int] = defaultdict(int)
    for reservation in reservations:
        per_level[reservation.stock_level_id] += reservation.quantity
    levels = list(StockLevel.objects.select_for_update().filter(pk__in=list(per_level)).order_by("pk"))
    now = timezone.now()
    for level in levels:
        level.updated_at = now
        level.reserved -= per_level[level.pk]
        if deduct_on_hand:
            level.on_hand -= per_level[level.pk]
    StockLevel.objects.bulk_update(levels, ["reserved", "on_hand", "updated_at"])
    Reservation.objects.filter(pk__in=[r.pk for r in reservations]).update(status=to_status, updated_at=now)
    return sum(per_level.values())


def stock_release(*, order_line_ids: Iterable[int]) -> int:
    """Give back the units still held for these lines (order cancelled). Returns units released."""
    return _settle(
        order_line_ids=order_line_ids,
        to_status=Reservation.Status.RELEASED,
        deduct_on_hand=False,
    )


def stock_consume(*, order_line_ids: Iterable[int]) -> int:
    """The units left the warehouse: deduct both on_hand and reserved. Returns units consumed."""
    return _settle(
        order_line_ids=order_line_ids,
        to_status=Reservation.Status.CONSUMED,
        deduct_on_hand=True,
    )


def stock_receive(*, sku: Sku, warehouse, quantity: int) -> StockLevel:
    """Add units to a warehouse (goods received, or an opening balance)."""
    level, _ = StockLevel.objects.get_or_create(sku=sku, warehouse=warehouse)
    StockLevel.objects.filter(pk=level.pk).update(on_hand=F("on_hand") + quantity)
    level.refresh_from_db()
    return level


def stock_release_for_orders(*, order_ids: list[int]) -> int:
    """Set-based release for many orders at once (the timeout sweep): a constant number of
    queries whatever the number of orders, lines or stock rows. Stock rows are still locked
    in primary-key order first, so this cannot deadlock with order_create.
    """
    active = Reservation.objects.filter(order_line__order_id__in=order_ids, status=Reservation.Status.ACTIVE)
    per_level = dict(active.order_by().values_list("stock_level_id").annotate(units=Sum("quantity")))
    if not per_level:
        return 0
    list(StockLevel.objects.select_for_update().filter(pk__in=list(per_level)).order_by("pk").values_list("pk"))
    now = timezone.now()
    StockLevel.objects.filter(pk__in=list(per_level)).update(
        reserved=F("reserved")
        - Case(*[When(pk=pk, then=Value(units)) for pk, units in per_level.items()], output_field=IntegerField()),
        updated_at=now,
    )
    active.update(status=Reservation.Status.RELEASED, updated_at=now)
    return sum(per_level.values())
