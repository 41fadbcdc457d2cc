"""inventory.services: plan and reserve under lock, release, consume, receive, and the set-based release.

Each service is tested for what it does and for what it refuses or leaves alone.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from inventory.models import Reservation, Sku, StockLevel
from inventory.services import (
    StockAdjustmentRefused,
    stock_consume,
    stock_lock_and_plan,
    stock_receive,
    stock_release,
    stock_release_for_orders,
    stock_reserve,
)
from oms.errors import InsufficientStock
from tests.inventory.conftest import levels, line_ids, reservations

pytestmark = pytest.mark.django_db


def consume_all(*, order_line_ids) -> int:
    """Ship every unit still reserved for these lines, warehouse by warehouse."""
    held: dict[int, dict[int, int]] = {}
    for r in Reservation.objects.filter(order_line_id__in=list(order_line_ids), status=Reservation.Status.ACTIVE):
        per_line = held.setdefault(r.stock_level.warehouse_id, {})
        per_line[r.order_line_id] = per_line.get(r.order_line_id, 0) + r.quantity
    return sum(stock_consume(warehouse_id=wh, quantities=q) for wh, q in held.items())


ACTIVE, RELEASED, CONSUMED = Reservation.Status.ACTIVE, Reservation.Status.RELEASED, Reservation.Status.CONSUMED


def level_pks(sku) -> list[int]:
    return list(StockLevel.objects.filter(sku=sku).order_by("pk").values_list("pk", flat=True))


def all_stock() -> list[tuple[int, int, int]]:
    return list(StockLevel.objects.order_by("pk").values_list("pk", "on_hand", "reserved"))


def all_reservations() -> list[tuple[int, int, str]]:
    return list(Reservation.objects.order_by("pk").values_list("pk", "quantity", "status"))


# --- stock_lock_and_plan ---------------------------------------------------------------


def test_plan_takes_from_the_first_warehouse_that_has_enough(stocked):
    sku = stocked("A", hz=10, gz=10)
    hz, _gz = level_pks(sku)

    plan = stock_lock_and_plan(demand={sku: 4})

    assert plan.takes == {sku.pk: [(hz, 4)]}
    assert set(plan.levels) == set(level_pks(sku))  # every row of the SKU is locked and known
    assert levels(sku) == [("HZ01", 10, 0), ("GZ01", 10, 0)]  # planning writes nothing


def test_plan_splits_a_line_across_warehouses_in_primary_key_order(stocked):
    sku = stocked("A", hz=2, gz=5)
    hz, gz = level_pks(sku)

    assert stock_lock_and_plan(demand={sku: 4}).takes == {sku.pk: [(hz, 2), (gz, 2)]}


def test_plan_for_exactly_the_available_units_is_allowed(stocked):
    sku = stocked("A", hz=2, gz=5)
    hz, gz = level_pks(sku)

    assert stock_lock_and_plan(demand={sku: 7}).takes == {sku.pk: [(hz, 2), (gz, 5)]}


def test_plan_counts_only_what_is_not_reserved(stocked, place):
    sku = stocked("A", hz=5, gz=5)
    place(sku, 5)  # HZ01 is fully reserved by another order
    _hz, gz = level_pks(sku)

    assert stock_lock_and_plan(demand={sku: 5}).takes == {sku.pk: [(gz, 5)]}
    with pytest.raises(InsufficientStock) as refused:
        stock_lock_and_plan(demand={sku: 6})
    assert refused.value.details == {"A": {"requested": 6, "available": 5}}


def test_plan_ignores_inactive_warehouses(stocked, main_warehouse):
    sku = stocked("A", hz=100, gz=3)
    main_warehouse.active = False
    main_warehouse.save()
    _hz, gz = level_pks(sku)

    assert stock_lock_and_plan(demand={sku: 3}).takes == {sku.pk: [(gz, 3)]}
    with pytest.raises(InsufficientStock) as refused:
        stock_lock_and_plan(demand={sku: 4})
    assert refused.value.details == {"A": {"requested": 4, "available": 3}}


def test_plan_refused_names_every_short_sku_and_changes_nothing(stocked, place):
    short = stocked("SHORT", hz=1, gz=1)
    enough = stocked("ENOUGH", hz=50)
    unstocked = Sku.objects.create(code="NONE", name="无库存商品", price=Decimal("10.00"))  # no stock row anywhere
    place(enough, 3)
    before = (all_stock(), all_reservations())

    with pytest.raises(InsufficientStock) as refused:
        stock_lock_and_plan(demand={short: 3, enough: 47, unstocked: 1})

    assert refused.value.code == "insufficient_stock"
    assert refused.value.details == {
        "SHORT": {"requested": 3, "available": 2},
        "NONE": {"requested": 1, "available": 0},
    }
    assert (all_stock(), all_reservations()) == before


# --- stock_reserve -----------------------------------------------------------------------


def test_reserve_applies_the_plan_and_writes_one_reservation_per_warehouse(stocked, released):
    sku = stocked("A", hz=2, gz=5)
    order = released(sku, 4)
    (line,) = line_ids(order)
    hz, gz = level_pks(sku)

    with transaction.atomic():
        plan = stock_lock_and_plan(demand={sku: 4})
        made = stock_reserve(plan=plan, line_ids_by_sku={sku.pk: line})

    assert [(r.order_line_id, r.stock_level_id, r.quantity, r.status) for r in made] == [
        (line, hz, 2, ACTIVE),
        (line, gz, 2, ACTIVE),
    ]
    assert all(r.pk for r in made)
    assert levels(sku) == [("HZ01", 2, 2), ("GZ01", 5, 2)]
    assert reservations(order) == [
        ("HZ01", 2, RELEASED),
        ("GZ01", 2, RELEASED),
        ("HZ01", 2, ACTIVE),
        ("GZ01", 2, ACTIVE),
    ]


def test_reserve_of_several_skus_touches_only_their_rows(stocked, released):
    a, b, other = stocked("A", hz=10), stocked("B", hz=10), stocked("OTHER", hz=10)
    line_a, line_b = line_ids(released(a, 1)), line_ids(released(b, 1))

    with transaction.atomic():
        plan = stock_lock_and_plan(demand={a: 3, b: 4})
        stock_reserve(plan=plan, line_ids_by_sku={a.pk: line_a[0], b.pk: line_b[0]})

    assert (levels(a), levels(b), levels(other)) == ([("HZ01", 10, 3)], [("HZ01", 10, 4)], [("HZ01", 10, 0)])


def test_reserve_beyond_on_hand_is_refused_by_the_database(stocked, released):
    """The plan is only valid in the transaction that locked the rows; applied twice it would
    over-reserve, and the check constraint refuses that whatever the code does."""
    sku = stocked("A", hz=10)
    (line,) = line_ids(released(sku, 1))
    before = (all_stock(), all_reservations())

    with pytest.raises(IntegrityError, match="stock_not_over_reserved"), transaction.atomic():
        plan = stock_lock_and_plan(demand={sku: 6})
        stock_reserve(plan=plan, line_ids_by_sku={sku.pk: line})
        stock_reserve(plan=plan, line_ids_by_sku={sku.pk: line})

    assert (all_stock(), all_reservations()) == before


# --- stock_release -----------------------------------------------------------------------


def test_release_gives_back_the_lines_units(stocked, place):
    sku = stocked("A", hz=10)
    order, other = place(sku, 3), place(sku, 2)

    assert stock_release(order_line_ids=line_ids(order)) == 3

    assert levels(sku) == [("HZ01", 10, 2)]  # on_hand untouched; the other order keeps its 2
    assert reservations(order) == [("HZ01", 3, RELEASED)]
    assert reservations(other) == [("HZ01", 2, ACTIVE)]


def test_release_of_a_line_split_across_warehouses(stocked, place):
    sku = stocked("A", hz=2, gz=5)
    order = place(sku, 4)
    assert levels(sku) == [("HZ01", 2, 2), ("GZ01", 5, 2)]

    assert stock_release(order_line_ids=line_ids(order)) == 4

    assert levels(sku) == [("HZ01", 2, 0), ("GZ01", 5, 0)]
    assert reservations(order) == [("HZ01", 2, RELEASED), ("GZ01", 2, RELEASED)]


@pytest.mark.parametrize("first", [stock_release, consume_all], ids=["after-release", "after-consume"])
def test_release_of_lines_that_hold_nothing_changes_nothing(first, stocked, place):
    sku = stocked("A", hz=10)
    order = place(sku, 3)
    first(order_line_ids=line_ids(order))
    before = (all_stock(), all_reservations())

    assert stock_release(order_line_ids=line_ids(order)) == 0
    assert stock_release(order_line_ids=[]) == 0

    assert (all_stock(), all_reservations()) == before


# --- stock_consume -----------------------------------------------------------------------


def test_consume_deducts_on_hand_and_reserved(stocked, place):
    sku = stocked("A", hz=2, gz=5)
    order, other = place(sku, 4), place(sku, 1)

    assert consume_all(order_line_ids=line_ids(order)) == 4

    assert levels(sku) == [("HZ01", 0, 0), ("GZ01", 3, 1)]
    assert reservations(order) == [("HZ01", 2, CONSUMED), ("GZ01", 2, CONSUMED)]
    assert reservations(other) == [("GZ01", 1, ACTIVE)]


def test_consume_takes_exactly_the_units_shipped_and_keeps_the_rest_reserved(stocked, place, main_warehouse):
    sku = stocked("A", hz=10)
    order = place(sku, 3)
    (line_id,) = line_ids(order)

    assert stock_consume(warehouse_id=main_warehouse.pk, quantities={line_id: 1}) == 1

    assert levels(sku) == [("HZ01", 9, 2)]
    assert sorted(reservations(order)) == [("HZ01", 1, CONSUMED), ("HZ01", 2, ACTIVE)]
    assert stock_consume(warehouse_id=main_warehouse.pk, quantities={line_id: 2}) == 2
    assert levels(sku) == [("HZ01", 7, 0)]


def test_consume_more_than_the_warehouse_holds_for_the_line_is_refused(stocked, place, main_warehouse):
    sku = stocked("A", hz=10)
    order = place(sku, 2)
    before = (all_stock(), all_reservations())

    with pytest.raises(InsufficientStock):
        stock_consume(warehouse_id=main_warehouse.pk, quantities={line_ids(order)[0]: 3})

    assert (all_stock(), all_reservations()) == before


@pytest.mark.parametrize("first", [stock_release, consume_all], ids=["after-release", "after-consume"])
def test_consume_of_lines_that_hold_nothing_changes_nothing(first, stocked, place):
    sku = stocked("A", hz=10)
    order = place(sku, 3)
    first(order_line_ids=line_ids(order))
    before = (all_stock(), all_reservations())

    assert consume_all(order_line_ids=line_ids(order)) == 0

    assert (all_stock(), all_reservations()) == before


# --- stock_receive -----------------------------------------------------------------------


def test_receive_adds_to_the_existing_row(stocked, place, main_warehouse):
    sku = stocked("A", hz=10)
    place(sku, 3)

    level = stock_receive(sku=sku, warehouse=main_warehouse, quantity=5)

    assert (level.on_hand, level.reserved) == (15, 3)  # the returned row is fresh from the database
    assert levels(sku) == [("HZ01", 15, 3)]


def test_receive_into_a_new_warehouse_opens_its_row(stocked, second_warehouse):
    sku = stocked("A", hz=10)

    level = stock_receive(sku=sku, warehouse=second_warehouse, quantity=7)

    assert (level.warehouse_id, level.on_hand, level.reserved) == (second_warehouse.pk, 7, 0)
    assert levels(sku) == [("HZ01", 10, 0), ("GZ01", 7, 0)]


def test_receive_that_would_leave_less_than_the_reserved_units_is_refused(stocked, place, main_warehouse):
    sku = stocked("A", hz=10)
    place(sku, 3)

    with pytest.raises(StockAdjustmentRefused):  # refused by the service, before the constraint would be
        stock_receive(sku=sku, warehouse=main_warehouse, quantity=-8)

    assert levels(sku) == [("HZ01", 10, 3)]


# --- stock_release_for_orders ------------------------------------------------------------


def test_release_for_orders_releases_every_active_reservation_of_those_orders(stocked, place):
    a, b = stocked("A", hz=2, gz=10), stocked("B", hz=10)
    first, second, kept, shipped = place(a, 4), place(b, 2), place(a, 1), place(b, 5)
    consume_all(order_line_ids=line_ids(shipped))

    assert stock_release_for_orders(order_ids=[first.pk, second.pk, shipped.pk]) == 6

    assert levels(a) == [("HZ01", 2, 0), ("GZ01", 10, 1)]
    assert levels(b) == [("HZ01", 5, 0)]
    assert reservations(first) == [("HZ01", 2, RELEASED), ("GZ01", 2, RELEASED)]
    assert reservations(second) == [("HZ01", 2, RELEASED)]
    assert reservations(kept) == [("GZ01", 1, ACTIVE)]  # not in the list: untouched
    assert reservations(shipped) == [("HZ01", 5, CONSUMED)]  # consumed stays consumed


def test_release_for_orders_with_nothing_active_changes_nothing(stocked, place):
    sku = stocked("A", hz=10)
    order = place(sku, 3)
    stock_release(order_line_ids=line_ids(order))
    before = (all_stock(), all_reservations())

    assert stock_release_for_orders(order_ids=[order.pk]) == 0
    assert stock_release_for_orders(order_ids=[]) == 0

    assert (all_stock(), all_reservations()) == before


def test_release_for_orders_uses_the_same_queries_for_two_orders_as_for_twenty(stocked, place):
    skus = [stocked(f"S{n}", hz=3, gz=100) for n in range(3)]

    def queries_to_release(count: int) -> int:
        orders = [place(skus[n % 3], 2 + n % 3) for n in range(count)]  # some lines split across warehouses
        with CaptureQueriesContext(connection) as captured:
            assert stock_release_for_orders(order_ids=[o.pk for o in orders]) == sum(2 + n % 3 for n in range(count))
        return len(captured)

    assert queries_to_release(2) == queries_to_release(20)
    assert sum(StockLevel.objects.values_list("reserved", flat=True)) == 0
