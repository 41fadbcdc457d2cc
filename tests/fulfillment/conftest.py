"""Fulfillment fixtures: warehouses with provinces and priorities, SKUs with stock where a test
says, and paid orders allocated through the real services.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from fulfillment.models import Shipment
from fulfillment.services import order_allocate
from inventory.models import Sku, Warehouse
from inventory.services import stock_receive
from orders.events import Actor
from orders.models import Order
from orders.services import order_confirm_cod, order_pay
from tests.inventory.factories import SkuFactory, WarehouseFactory
from tests.orders.factories import OrderFactory, OrderInputFactory, StorefrontFactory

SYSTEM = Actor.system("test")


@pytest.fixture
def hangzhou(db) -> Warehouse:
    return WarehouseFactory(code="HZ01", name="杭州主仓", provinces=["浙江省", "上海市"], priority=10)


@pytest.fixture
def guangzhou(db) -> Warehouse:
    return WarehouseFactory(code="GZ01", name="广州仓", provinces=["广东省"], priority=20)


@pytest.fixture
def stocked(db):
    """stocked({warehouse: units, ...}, code="X") -> a SKU with those units on hand."""

    def make(per_warehouse: dict[Warehouse, int], code: str | None = None, price: str = "70.00", **extra) -> Sku:
        first, *rest = list(per_warehouse.items())
        sku = SkuFactory(
            **({"code": code} if code else {}), price=price, stock=first[1], stock__warehouse=first[0], **extra
        )
        for warehouse, units in rest:
            if units:
                stock_receive(sku=sku, warehouse=warehouse, quantity=units)
        return sku

    return make


def order_for(lines: list[tuple[Sku, int]], *, province: str = "浙江省", mobile: str = "13800138000", **body) -> Order:
    payload = OrderInputFactory(
        lines=[{"sku": sku.code, "quantity": qty} for sku, qty in lines],
        shipping_address={
            "receiver": "张小姐",
            "phone": mobile,
            "province": province,
            "city": "杭州市",
            "district": "西湖区",
            "detail": "文三路100号",
            "postcode": "310000",
        },
        customer={"name": "张小姐", "mobile": mobile, "email": "", "member_id": ""},
        **body,
    )
    return OrderFactory(storefront=StorefrontFactory(), payload=payload)


def paid(order: Order) -> Order:
    """Paid and approved (待发货), not yet allocated."""
    if order.payment_method == "cod":
        return order_confirm_cod(order=order, actor=SYSTEM)
    return order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("test"))


def allocated(order: Order) -> list[Shipment]:
    paid(order)
    return order_allocate(order=order)


@pytest.fixture
def staff(db):
    """staff("仓储") -> a user in that seeded group (the groups come from a migration)."""

    def make(group: str, username: str | None = None) -> User:
        user = User.objects.create_user(username or f"u-{group}-{User.objects.count()}", password="x", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        return user

    return make
