"""The database itself refuses negative stock and over-reservation, whatever the code does."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from inventory.models import StockLevel
from tests.inventory.conftest import levels

pytestmark = pytest.mark.django_db


@pytest.fixture
def level(stocked, place) -> StockLevel:
    """10 on hand, 3 of them reserved by an order."""
    sku = stocked("A", hz=10)
    place(sku, 3)
    return StockLevel.objects.get(sku=sku)


@pytest.mark.parametrize(
    ("change", "constraint"),
    [
        pytest.param({"reserved": -1}, "stock_reserved_non_negative", id="negative-reserved"),
        pytest.param({"on_hand": -1, "reserved": 0}, "stock_not_over_reserved", id="negative-on_hand"),
        pytest.param({"on_hand": 2}, "stock_not_over_reserved", id="on_hand-below-reserved"),
        pytest.param({"reserved": F("on_hand") + 1}, "stock_not_over_reserved", id="reserved-above-on_hand"),
    ],
)
def test_impossible_stock_is_refused(change, constraint, level):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        StockLevel.objects.filter(pk=level.pk).update(**change)

    assert levels(level.sku) == [("HZ01", 10, 3)]


@pytest.mark.parametrize(
    ("change", "on_hand", "reserved"),
    [
        pytest.param({"reserved": F("on_hand")}, 10, 10, id="everything-reserved"),
        pytest.param({"on_hand": 3}, 3, 3, id="on_hand-down-to-reserved"),
        pytest.param({"on_hand": 0, "reserved": 0}, 0, 0, id="empty"),
    ],
)
def test_stock_at_the_limits_is_allowed(change, on_hand, reserved, level):
    StockLevel.objects.filter(pk=level.pk).update(**change)

    assert levels(level.sku) == [("HZ01", on_hand, reserved)]


def test_one_row_per_sku_and_warehouse(level):
    with (
        pytest.raises(IntegrityError, match="stock_unique_sku_warehouse|UNIQUE constraint failed"),
        transaction.atomic(),
    ):
        StockLevel.objects.create(sku=level.sku, warehouse=level.warehouse, on_hand=5)

    assert levels(level.sku) == [("HZ01", 10, 3)]
