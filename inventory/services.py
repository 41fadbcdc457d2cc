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
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.bulk import insert_new, returning_supported, update_per_pk
from oms.errors import DomainError, InsufficientStock, ValidationFailed, require_permission
from oms.prepared import PreparedQuery

from .models import Reservation, Sku, StockLevel, StockMovement, Warehouse


@dataclass
class StockPlan:
    """Which stock rows will give how many units to each SKU; built under lock."""

    levels: dict[int, StockLevel]
    takes: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # sku_id -> [(level_id, qty)]


_STOCK_ROWS_FOR_UPDATE = PreparedQuery(
    lambda sku_ids: (
        StockLevel.objects.select_for_update(of=("self",))
        .filter(sku_id__in=sku_ids, warehouse__active=True)
        .order_by("pk")
    )
)


def stock_lock_and_plan(*, demand: Mapping[Sku, int]) -> StockPlan:
    """Lock the SKUs' stock rows and plan the reservation, or raise InsufficientStock.

    Warehouses are drawn in primary-key order; a line may be split across them.
    """
    levels = _STOCK_ROWS_FOR_UPDATE.objects(sku_ids=[sku.pk for sku in demand])
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
    # The rows are locked (stock_lock_and_plan), so the totals counted in memory are written as
    # they are: one UPDATE for all of them, plain SQL because it runs for every order placed.
    # Its count is not read, so it may travel with the reservations' INSERT (oms.bulk).
    update_per_pk(
        StockLevel, {pk: {"reserved": plan.levels[pk].reserved, "updated_at": now} for pk in units}, defer=True
    )
    insert_new(reservations)
    return reservations


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


def stock_consume(*, warehouse_id: int, quantities: Mapping[int, int]) -> int:
    """Units left `warehouse_id`: for each order line, take exactly `quantities[line_id]` units
    off both on_hand and reserved, from the line's active reservations in that warehouse.

    A reservation holding more than is shipped is split: the shipped part becomes a consumed
    reservation, the rest stays active for the next parcel. Raises InsufficientStock if a
    line has fewer units reserved there than it ships (the allocation put them elsewhere).
    Returns the units consumed.
    """
    return _take_units(
        quantities=quantities, warehouse_id=warehouse_id, to_status=Reservation.Status.CONSUMED, deduct_on_hand=True
    )


def stock_release_units(*, quantities: Mapping[int, int]) -> int:
    """Give back exactly these units of these lines (wherever they are reserved): units that will
    never ship, e.g. refunded before shipment. Returns the units released."""
    return _take_units(
        quantities=quantities, warehouse_id=None, to_status=Reservation.Status.RELEASED, deduct_on_hand=False
    )


def _take_units(
    *, quantities: Mapping[int, int], warehouse_id: int | None, to_status: str, deduct_on_hand: bool
) -> int:
    wanted = {line_id: qty for line_id, qty in quantities.items() if qty > 0}
    if not wanted:
        return 0
    active = Reservation.objects.select_for_update(of=("self",)).filter(
        order_line_id__in=list(wanted), status=Reservation.Status.ACTIVE
    )
    if warehouse_id is not None:
        active = active.filter(stock_level__warehouse_id=warehouse_id)
    reservations = list(active.order_by("pk"))
    held: dict[int, int] = defaultdict(int)
    for reservation in reservations:
        held[reservation.order_line_id] += reservation.quantity
    short = {
        str(line_id): {"requested": qty, "reserved": held[line_id]}
        for line_id, qty in wanted.items()
        if held[line_id] < qty
    }
    if short:
        raise InsufficientStock(_("数量超过为订单行预占的数量"), details=short)

    now = timezone.now()
    per_level: dict[int, int] = defaultdict(int)
    taken_whole: list[int] = []
    shrunk: list[Reservation] = []
    split_off: list[Reservation] = []
    remaining = dict(wanted)
    for reservation in reservations:
        take = min(reservation.quantity, remaining[reservation.order_line_id])
        if take == 0:
            continue
        remaining[reservation.order_line_id] -= take
        per_level[reservation.stock_level_id] += take
        if take == reservation.quantity:
            taken_whole.append(reservation.pk)
        else:
            reservation.quantity -= take
            reservation.updated_at = now
            shrunk.append(reservation)
            split_off.append(
                Reservation(
                    order_line_id=reservation.order_line_id,
                    stock_level_id=reservation.stock_level_id,
                    quantity=take,
                    status=to_status,
                )
            )
    levels = list(StockLevel.objects.select_for_update().filter(pk__in=list(per_level)).order_by("pk"))
    for level in levels:
        level.reserved -= per_level[level.pk]
        if deduct_on_hand:
            level.on_hand -= per_level[level.pk]
        level.updated_at = now
    StockLevel.objects.bulk_update(levels, ["reserved", "on_hand", "updated_at"])
    if taken_whole:
        Reservation.objects.filter(pk__in=taken_whole).update(status=to_status, updated_at=now)
    if shrunk:
        Reservation.objects.bulk_update(shrunk, ["quantity", "updated_at"])
        Reservation.objects.bulk_create(split_off)
    return sum(per_level.values())


def stock_hold_defective(*, sku: Sku, warehouse: Warehouse, quantity: int) -> StockLevel:
    """Returned units that failed inspection: kept apart, counted, never sellable."""
    with transaction.atomic():
        StockLevel.objects.get_or_create(sku=sku, warehouse=warehouse)
        level = StockLevel.objects.select_for_update().get(sku=sku, warehouse=warehouse)
        level.defective += quantity
        level.save(update_fields=["defective", "updated_at"])
    return level


def stock_holdings(*, order_line_ids: Iterable[int]) -> dict[int, dict[int, int]]:
    """{order_line_id: {warehouse_id: units reserved there}} for the lines' active reservations."""
    holdings: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    rows = (
        Reservation.objects.filter(order_line_id__in=list(order_line_ids), status=Reservation.Status.ACTIVE)
        .values_list("order_line_id", "stock_level__warehouse_id")
        .annotate(units=Sum("quantity"))
    )
    for line_id, warehouse_id, units in rows:
        holdings[line_id][warehouse_id] += units
    return {line_id: dict(per_wh) for line_id, per_wh in holdings.items()}


def stock_lock_for_allocation(*, sku_ids: Iterable[int]) -> dict[tuple[int, int], StockLevel]:
    """Lock every active warehouse's stock rows of these SKUs, in primary-key order (the same
    order as order_create, so the two cannot deadlock). {(sku_id, warehouse_id): level}.
    """
    levels = (
        StockLevel.objects.select_for_update(of=("self",))
        .filter(sku_id__in=list(sku_ids), warehouse__active=True)
        .order_by("pk")
    )
    return {(level.sku_id, level.warehouse_id): level for level in levels}


def stock_reallocate(
    *,
    levels: Mapping[tuple[int, int], StockLevel],
    lines: Mapping[int, int],
    targets: Mapping[int, Mapping[int, int]],
) -> None:
    """Move order lines' reservations to the warehouses allocation chose.

    `levels` comes from stock_lock_for_allocation in the same transaction (the rows are
    locked); `lines` is {order_line_id: sku_id}; `targets` is {order_line_id: {warehouse_id:
    units}}. The line's active reservations are released and new ones made where it ships
    from; the check constraints still refuse a warehouse that cannot hold them.
    """
    if not targets:
        return
    now = timezone.now()
    active = list(
        Reservation.objects.select_for_update(of=("self",))
        .filter(order_line_id__in=list(targets), status=Reservation.Status.ACTIVE)
        .select_related("stock_level")
    )
    by_pk = {level.pk: level for level in levels.values()}
    for reservation in active:
        level = by_pk[reservation.stock_level_id]
        level.reserved -= reservation.quantity
    new = []
    for line_id, per_wh in targets.items():
        for warehouse_id, units in per_wh.items():
            level = levels[(lines[line_id], warehouse_id)]
            level.reserved += units
            new.append(Reservation(order_line_id=line_id, stock_level_id=level.pk, quantity=units))
    for level in by_pk.values():
        if level.reserved > level.on_hand:
            raise InsufficientStock(details={level.sku.code: {"warehouse": level.warehouse_id}})
        level.updated_at = now
    StockLevel.objects.bulk_update(list(by_pk.values()), ["reserved", "updated_at"])
    Reservation.objects.filter(pk__in=[r.pk for r in active]).update(status=Reservation.Status.RELEASED, updated_at=now)
    Reservation.objects.bulk_create(new)


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
    queries whatever the number of orders, lines or stock rows.

    The caller holds the orders' row locks (the sweep claims them), so nothing else can move
    these orders' reservations: they are marked released first, in one UPDATE that returns
    their stock rows and quantities. Only then are the stock rows locked, in primary-key order
    like order_create locks them (so the two cannot deadlock), read under that lock and given
    back their units in one UPDATE; the hot stock rows stay locked from here to the caller's
    COMMIT only.
    """
    if not order_ids:
        return 0
    if returning_supported():
        reservation = Reservation._meta
        line = reservation.get_field("order_line").related_model._meta
        quote = connection.ops.quote_name
        marks = ", ".join(["%s"] * len(order_ids))
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote(reservation.db_table)} SET {quote('status')} = %s, {quote('updated_at')} = %s"
                f" WHERE {quote('status')} = %s AND {quote('order_line_id')} IN"
                f" (SELECT {quote(line.pk.column)} FROM {quote(line.db_table)} WHERE {quote('order_id')} IN ({marks}))"
                f" RETURNING {quote('stock_level_id')}, {quote('quantity')}",
                [Reservation.Status.RELEASED, timezone.now(), Reservation.Status.ACTIVE, *order_ids],
            )
            released = cursor.fetchall()
    else:
        active = Reservation.objects.filter(order_line__order_id__in=order_ids, status=Reservation.Status.ACTIVE)
        released = list(active.values_list("stock_level_id", "quantity"))
        active.update(status=Reservation.Status.RELEASED, updated_at=timezone.now())
    per_level: dict[int, int] = defaultdict(int)
    for stock_level_id, quantity in released:
        per_level[stock_level_id] += quantity
    if not per_level:
        return 0
    held = StockLevel.objects.select_for_update().filter(pk__in=list(per_level)).order_by("pk")
    now = timezone.now()
    update_per_pk(
        StockLevel,
        {
            pk: {"reserved": reserved - per_level[pk], "updated_at": now}
            for pk, reserved in held.values_list("pk", "reserved")
        },
    )
    return sum(per_level.values())
