"""Stock under real concurrency: threads against PostgreSQL, each with its own connection."""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError, connections, transaction

from inventory.models import Reservation, StockLevel
from inventory.services import stock_lock_and_plan, stock_release, stock_release_for_orders, stock_reserve
from oms.errors import InsufficientStock
from tests.inventory.conftest import levels, line_ids
from tests.threads import run_in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def reserve(sku, quantity: int, line_id: int) -> list[Reservation]:
    """What order_revive does for a closed order's line: lock, plan and reserve in one transaction."""
    with transaction.atomic():
        plan = stock_lock_and_plan(demand={sku: quantity})
        return stock_reserve(plan=plan, line_ids_by_sku={sku.pk: line_id})


def active_units(sku) -> int:
    return sum(
        Reservation.objects.filter(stock_level__sku=sku, status=Reservation.Status.ACTIVE).values_list(
            "quantity", flat=True
        )
    )


def test_thirty_reservations_for_ten_free_units_never_oversell(stocked, released, place):
    """30 released lines of 2 units each race for the 5 + 5 units left in two warehouses:
    exactly 5 win (one of them split across the warehouses), 25 are refused, nothing is lost."""
    sku = stocked("HOT", hz=55, gz=5)
    waiting = [released(sku, 2) for _ in range(30)]
    place(sku, 50)  # another customer holds 50 of HZ01's 55
    assert levels(sku) == [("HZ01", 55, 50), ("GZ01", 5, 0)]

    results = run_in_threads(30, lambda i: reserve(sku, 2, line_ids(waiting[i])[0]))

    won = [r for r in results if isinstance(r, list)]
    refused = [r for r in results if isinstance(r, InsufficientStock)]
    assert len(won) == 5, [r for r in results if not isinstance(r, (list, InsufficientStock))]
    assert len(refused) == 25
    assert sorted(len(reservations) for reservations in won) == [1, 1, 1, 1, 2]  # one line split HZ01 + GZ01
    assert levels(sku) == [("HZ01", 55, 55), ("GZ01", 5, 5)]
    assert active_units(sku) == 60
    assert {(exc.details["HOT"]["requested"], exc.details["HOT"]["available"]) for exc in refused} == {(2, 0)}


def test_releases_racing_reservations_never_lose_or_invent_a_unit(stocked, released, place):
    """Ten orders give back one unit each while twenty released lines try to take one: however
    the threads interleave, what is reserved is exactly what the active reservations hold."""
    sku = stocked("HOT", hz=10)
    waiting = [released(sku, 1) for _ in range(20)]
    holders = [place(sku, 1) for _ in range(10)]
    assert levels(sku) == [("HZ01", 10, 10)]

    def work(i: int):
        if i < 10:
            with transaction.atomic():
                return ("released", stock_release(order_line_ids=line_ids(holders[i])))
        return ("reserved", reserve(sku, 1, line_ids(waiting[i - 10])[0]))

    results = run_in_threads(30, work)

    unexpected = [r for r in results if not isinstance(r, (tuple, InsufficientStock))]
    assert unexpected == []
    assert sorted(units for kind, units in results[:10]) == [1] * 10
    won = sum(1 for r in results[10:] if isinstance(r, tuple))
    level = StockLevel.objects.get(sku=sku)
    assert (level.on_hand, level.reserved) == (10, won)
    assert active_units(sku) == won
    assert won <= 10


def test_set_based_release_racing_reservations_keeps_the_books(stocked, released, place):
    """The timeout sweep's stock_release_for_orders against reservations in flight."""
    sku = stocked("HOT", hz=20)
    waiting = [released(sku, 1) for _ in range(20)]
    holders = [place(sku, 2) for _ in range(10)]
    assert levels(sku) == [("HZ01", 20, 20)]

    def work(i: int):
        if i == 0:
            with transaction.atomic():
                return ("released", stock_release_for_orders(order_ids=[order.pk for order in holders]))
        return ("reserved", reserve(sku, 1, line_ids(waiting[i - 1])[0]))

    results = run_in_threads(21, work)

    assert results[0] == ("released", 20)
    assert all(isinstance(r, (tuple, InsufficientStock)) for r in results[1:]), results
    won = sum(1 for r in results[1:] if isinstance(r, tuple))
    assert levels(sku) == [("HZ01", 20, won)]
    assert active_units(sku) == won


def test_planned_rows_stay_locked_until_the_transaction_ends(stocked):
    """Another transaction cannot touch the stock rows between the plan and the reservation."""
    sku = stocked("HOT", hz=10, gz=10)
    planned, finish = threading.Event(), threading.Event()
    outcome: list = []

    def hold_the_plan() -> None:
        try:
            with transaction.atomic():
                stock_lock_and_plan(demand={sku: 1})
                planned.set()
                finish.wait(timeout=30)
            outcome.append("committed")
        except Exception as exc:  # reported by the assertion below
            outcome.append(exc)
        finally:
            planned.set()
            connections.close_all()

    holder = threading.Thread(target=hold_the_plan)
    holder.start()
    try:
        assert planned.wait(timeout=30)
        for level in StockLevel.objects.filter(sku=sku):
            with pytest.raises(OperationalError, match="could not obtain lock"), transaction.atomic():
                StockLevel.objects.select_for_update(nowait=True).get(pk=level.pk)
    finally:
        finish.set()
        holder.join()
    assert outcome == ["committed"]
    with transaction.atomic():  # free again once the planning transaction is over
        assert len(StockLevel.objects.select_for_update(nowait=True).filter(sku=sku)) == 2


def test_two_releases_of_the_same_line_give_its_units_back_once(stocked, place):
    """Two cancels of one order racing each other (neither holding the order lock): the line's
    3 units come back once, and the other order's 5 stay reserved."""
    sku = stocked("HOT", hz=10)
    twice = place(sku, 3)
    other = place(sku, 5)
    assert levels(sku) == [("HZ01", 10, 8)]

    def release(_i: int) -> int:
        with transaction.atomic():
            return stock_release(order_line_ids=line_ids(twice))

    for _trial in range(5):
        results = run_in_threads(2, release)
        assert sorted(results) == [0, 3], results
        assert levels(sku) == [("HZ01", 10, 5)]
        assert active_units(sku) == 5
        Reservation.objects.filter(order_line_id__in=line_ids(twice)).update(status=Reservation.Status.ACTIVE)
        StockLevel.objects.filter(sku=sku).update(reserved=8)
    assert Reservation.objects.get(order_line_id__in=line_ids(other)).status == Reservation.Status.ACTIVE
