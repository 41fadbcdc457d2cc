"""Fulfillment under real concurrency: threads against PostgreSQL, each with its own connection."""

from __future__ import annotations

import pytest

from fulfillment.models import Shipment, ShipmentLine
from fulfillment.services import order_allocate, shipment_ship
from inventory.models import Reservation, StockLevel
from oms.errors import InvalidTransition
from orders.events import Actor
from orders.models import OrderStatus
from tests.threads import run_in_threads
from workflows.cancellation import order_cancel

from .conftest import SYSTEM, allocated, order_for, paid

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_allocating_the_same_order_at_once_makes_its_parcel_once(hangzhou, guangzhou, stocked):
    """The allocation message and the clock's catch-up arrive together: one parcel, one move of
    the reservations, whatever the interleaving."""
    shirt = stocked({hangzhou: 1, guangzhou: 5})
    order = order_for([(shirt, 2)])
    paid(order)

    results = run_in_threads(6, lambda _: order_allocate(order=order))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(len(r) for r in results) == 1
    assert ShipmentLine.objects.filter(order_id=order.pk).count() == 1
    assert Reservation.objects.filter(order_line__order=order, status="active").get().quantity == 2
    assert sum(StockLevel.objects.filter(sku=shirt).values_list("reserved", flat=True)) == 2


def test_orders_allocated_together_never_overbook_a_warehouse(hangzhou, guangzhou, stocked):
    """Ten orders of one unit each, reserved wherever stock was at creation, are allocated at
    once; every warehouse's reservations still fit its stock (the check constraint would refuse
    otherwise), and every unit is in exactly one parcel."""
    shirt = stocked({hangzhou: 6, guangzhou: 6})
    orders = [order_for([(shirt, 1)], mobile=f"1380013{i:04d}") for i in range(10)]
    for order in orders:
        paid(order)

    results = run_in_threads(len(orders), lambda i: order_allocate(order=orders[i]))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert ShipmentLine.objects.count() == 10
    for level in StockLevel.objects.filter(sku=shirt):
        assert level.reserved <= level.on_hand
        assert level.reserved == sum(
            Reservation.objects.filter(stock_level=level, status="active").values_list("quantity", flat=True)
        )


def test_cancel_racing_ship_either_ships_or_cancels_never_both(hangzhou, stocked):
    """A customer cancels while the warehouse ships: the order lock decides. Shipped means the
    cancel is refused; cancelled means the parcel was cancelled first and shipping is refused."""
    outcomes = set()
    for attempt in range(8):
        shirt = stocked({hangzhou: 5}, code=f"RACE-{attempt}")
        order = order_for([(shirt, 1)], mobile=f"1390013{attempt:04d}")
        (parcel,) = allocated(order)

        def act(i: int, order=order, parcel=parcel, attempt=attempt):
            if i == 0:
                return order_cancel(order=order, actor=Actor.system("customer"), reason="changed_mind")
            return shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no=f"SF{attempt:012d}")

        results = run_in_threads(2, act)
        order.refresh_from_db()
        parcel.refresh_from_db()
        level = StockLevel.objects.get(sku=shirt, warehouse=hangzhou)
        if order.status == OrderStatus.SHIPPED:
            assert isinstance(results[0], InvalidTransition), results
            assert parcel.status == "shipped"
            assert (level.on_hand, level.reserved) == (4, 0)
        else:
            assert order.status == OrderStatus.CANCELLED
            assert isinstance(results[1], InvalidTransition), results
            assert parcel.status == "cancelled"
            assert (level.on_hand, level.reserved) == (5, 0)
        outcomes.add(order.status)
    assert Shipment.objects.filter(status="shipped").count() + Shipment.objects.filter(status="cancelled").count() == 8
