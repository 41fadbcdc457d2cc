"""Warehouses and SKUs with stock, the opening balance booked through inventory.services."""

from __future__ import annotations

from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from inventory.models import Sku, Warehouse
from inventory.services import stock_receive


class WarehouseFactory(DjangoModelFactory):
    """The main warehouse unless told otherwise; asking for the same code twice gives the same row."""

    class Meta:
        model = Warehouse
        django_get_or_create = ("code",)

    code = "HZ01"
    name = "杭州主仓"
    active = True


class SkuFactory(DjangoModelFactory):
    """A SKU with `stock` units on hand (100 by default) in `stock__warehouse` (the main warehouse).

    SkuFactory(stock=0) still creates the stock row, empty; SkuFactory.build() creates nothing.
    """

    class Meta:
        model = Sku
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"SKU-F{n:04d}")
    name = factory.LazyAttribute(lambda sku: f"商品 {sku.code}")
    spec = "默认"
    price = Decimal("70.00")
    active = True

    @factory.post_generation
    def stock(sku: Sku, create: bool, extracted: int | None, **kwargs) -> None:
        if not create:
            return
        warehouse = kwargs.pop("warehouse", None) or WarehouseFactory()
        stock_receive(sku=sku, warehouse=warehouse, quantity=100 if extracted is None else extracted)
