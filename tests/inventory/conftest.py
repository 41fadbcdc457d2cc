"""Stock in two warehouses, and orders whose lines own the reservations the tests make.

A reservation belongs to an order line, so the tests here place real orders (OrderFactory,
through order_create) and, where a test wants to reserve by hand, release them first: the
lines then hold nothing, like orders closed by timeout before a late payment revives them.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from inventory.models import Reservation, Sku, StockLevel, Warehouse
from inventory.services import stock_receive, stock_release
from orders.models import Order
from tests.inventory.factories import SkuFactory, WarehouseFactory
from tests.orders.factories import OrderFactory


def levels(sku: Sku) -> list[tuple[str, int, int]]:
    """(warehouse, on_hand, reserved) of each of the SKU's stock rows, in primary-key order."""
    return list(StockLevel.objects.filter(sku=sku).order_by("pk").values_list("warehouse__code", "on_hand", "reserved"))


def line_ids(*orders: Order) -> list[int]:
    return [line.pk for order in orders for line in order.lines.order_by("pk")]


def reservations(*orders: Order) -> list[tuple[str, int, str]]:
    """(warehouse, quantity, status) of the orders' reservations, in primary-key order."""
    return list(
        Reservation.objects.filter(order_line__order__in=orders)
        .order_by("pk")
        .values_list("stock_level__warehouse__code", "quantity", "status")
    )


@pytest.fixture
def main_warehouse(db) -> Warehouse:
    return WarehouseFactory(code="HZ01", name="杭州主仓")


@pytest.fixture
def second_warehouse(db) -> Warehouse:
    return WarehouseFactory(code="GZ01", name="广州分仓")


@pytest.fixture
def stocked(main_warehouse, second_warehouse):
    """stocked(code, hz, gz): a SKU at 10.00 with `hz` units in HZ01 and, if given, `gz` in GZ01."""

    def make(code: str, hz: int, gz: int | None = None) -> Sku:
        sku = SkuFactory(code=code, price=Decimal("10.00"), stock=hz, stock__warehouse=main_warehouse)
        if gz is not None:
            stock_receive(sku=sku, warehouse=second_warehouse, quantity=gz)
        return sku

    return make


@pytest.fixture
def place(storefront):
    """place(sku, quantity): a new order for `quantity` units of one SKU, reserved by order_create."""

    def make(sku: Sku, quantity: int) -> Order:
        return OrderFactory(storefront=storefront, payload__lines=[{"sku": sku.code, "quantity": quantity}])

    return make


@pytest.fixture
def released(place):
    """released(sku, quantity): an order whose reservation was released; its line holds nothing."""

    def make(sku: Sku, quantity: int) -> Order:
        order = place(sku, quantity)
        with transaction.atomic():  # like its callers, the service locks rows inside their transaction
            assert stock_release(order_line_ids=line_ids(order)) == quantity
        return order

    return make
