"""Stock reservation, release and consumption, and the one writer of hand-made changes (stock_adjust).

Stock rows are always locked in primary-key order (`SELECT ... FOR UPDATE ORDER BY id`),
so two orders touching the same SKUs queue instead of deadlocking. The number of
queries does not depend on the number of lines: one locking read, one bulk update,
one bulk insert.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Sum, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.errors import DomainError, InsufficientStock, ValidationFailed, require_permission

from .models import Reservation, Sku, StockLevel, StockMovement, Warehouse


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
    units: dict[int, int] = defaultdict(int)  # stock level id -> units to reserve
    now = timezone.now()
    for sku_id, takes in plan.takes.items():
        for level_id, qty in takes:
            level = plan.levels[level_id]
            level.reserved += qty
            level.updated_at = now
            units[level_id] += qty
            reservations.append(
                Reservation(
                    order_line_id=line_ids_by_sku[sku_id],
                    stock_level_id=level_id,
                    quantity=qty,
                )
            )
    _add_reserved(units, now=now)
    return Reservation.objects.bulk_create(reservations)


def _add_reserved(units: Mapping[int, int], *, now) -> None:
    """One UPDATE adding `units[id]` to each locked stock row's `reserved`.

    Written as SQL because it runs for every order placed, and bulk_update's CASE WHEN
    expressions cost more to compile than the statement costs to run. Plain SQL that
    PostgreSQL and SQLite both accept.
    """
    if not units:
        return
    table = connection.ops.quote_name(StockLevel._meta.db_table)
    cases = " ".join("WHEN %s THEN %s" for _ in units)
    placeholders = ", ".join("%s" for _ in units)
    params: list[object] = [value for pair in units.items() for value in pair]
    params += [connection.ops.adapt_datetimefield_value(now), *units]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET reserved = reserved + CASE id {cases} END, updated_at = %s"
            f" WHERE id IN ({placeholders})",
            params,
        )


def _settle(*, order_line_ids: Iterable[int], to_status: str, deduct_on_hand: bool) -> int:
    # The reservations are locked before they are counted: two releases of the same line at
    # once (a cancel racing another cancel) must give its units back once, not twice.
    reservations = list(
        Reservation.objects.select_for_update(of=("self",)).filter(
            order_line_id__in=list(order_line_ids), status=Reservation.Status.ACTIVE
        )
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


class StockAdjustmentRefused(DomainError):
    code = "stock_adjustment_refused"
    status_code = 409
    default_message = _("库存调整后在库数量不能小于已预占数量")


def stock_adjust(
    *,
    sku: Sku,
    warehouse: Warehouse,
    delta: int,
    reason: str,
    actor_label: str,
    user=None,
    note: str = "",
) -> StockMovement:
    """The one way to change on-hand stock by hand or by a goods-in: receive, count, write off.

    Locks the stock row (creating it at zero if the SKU was never in this warehouse), refuses
    a change that would leave fewer units on hand than are reserved for orders, and writes a
    StockMovement with the before and after in the same transaction.
    """
    if user is not None:
        require_permission(user, "inventory.adjust_stock")
    if reason not in StockMovement.Reason.values:
        raise ValidationFailed(fields={"reason": [_("无效的调整原因")]})
    if delta == 0:
        raise ValidationFailed(fields={"delta": [_("变动数量不能为 0")]})
    with transaction.atomic():
        StockLevel.objects.get_or_create(sku=sku, warehouse=warehouse)
        level = StockLevel.objects.select_for_update().get(sku=sku, warehouse=warehouse)
        before = level.on_hand
        if before + delta < level.reserved:
            raise StockAdjustmentRefused(
                details={"on_hand": before, "reserved": level.reserved, "delta": delta},
                fields={"delta": [_("最多可减少 %(n)d 件") % {"n": before - level.reserved}]},
            )
        level.on_hand = before + delta
        level.save(update_fields=["on_hand", "updated_at"])
        return StockMovement.objects.create(
            stock_level=level,
            reason=reason,
            delta=delta,
            on_hand_before=before,
            on_hand_after=level.on_hand,
            note=note[:200],
            actor_label=actor_label[:150],
            actor_user=user,
        )


def stock_receive(
    *, sku: Sku, warehouse: Warehouse, quantity: int, actor_label: str = "goods_in", user=None
) -> StockLevel:
    """Add units to a warehouse (goods received); recorded as a movement like any adjustment."""
    movement = stock_adjust(
        sku=sku,
        warehouse=warehouse,
        delta=quantity,
        reason=StockMovement.Reason.RECEIVED,
        actor_label=actor_label,
        user=user,
    )
    return movement.stock_level


def stock_release_for_orders(*, order_ids: list[int]) -> int:
    """Set-based release for many orders at once (the timeout sweep): a constant number of
    queries whatever the number of orders, lines or stock rows. Stock rows are still locked
    in primary-key order first, so this cannot deadlock with order_create. The caller holds
    the orders' row locks (the sweep claims them), so no other release of these lines runs.
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
