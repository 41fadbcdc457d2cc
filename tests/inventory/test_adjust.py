"""Hand-made stock changes go through stock_adjust: locked, never below what is reserved, recorded."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from inventory.models import StockLevel, StockMovement, Warehouse
from inventory.services import StockAdjustmentRefused, stock_adjust, stock_receive
from oms.errors import ValidationFailed


@pytest.fixture
def level(tshirt):
    return StockLevel.objects.get(sku=tshirt)


def test_an_adjustment_changes_on_hand_and_records_before_and_after(level, admin_user):
    movement = stock_adjust(
        sku=level.sku, warehouse=level.warehouse, delta=-3, reason="damaged", actor_label="admin", user=admin_user
    )
    level.refresh_from_db()
    assert level.on_hand == 97
    assert (movement.on_hand_before, movement.delta, movement.on_hand_after) == (100, -3, 97)
    assert movement.actor_user == admin_user


def test_it_refuses_to_go_below_what_orders_have_reserved(level, create_order):
    create_order(lines=[{"sku": level.sku.code, "quantity": 60}])
    with pytest.raises(StockAdjustmentRefused) as raised:
        stock_adjust(sku=level.sku, warehouse=level.warehouse, delta=-41, reason="count_correction", actor_label="t")
    assert raised.value.details == {"on_hand": 100, "reserved": 60, "delta": -41}
    level.refresh_from_db()
    assert level.on_hand == 100
    assert not StockMovement.objects.exclude(reason="received").exists()  # only the opening goods-in
    stock_adjust(sku=level.sku, warehouse=level.warehouse, delta=-40, reason="count_correction", actor_label="t")
    level.refresh_from_db()
    assert (level.on_hand, level.reserved) == (60, 60)


@pytest.mark.parametrize("delta, reason", [(0, "damaged"), (5, "because")])
def test_bad_input_is_refused_and_changes_nothing(level, delta, reason):
    with pytest.raises(ValidationFailed):
        stock_adjust(sku=level.sku, warehouse=level.warehouse, delta=delta, reason=reason, actor_label="t")
    assert not StockMovement.objects.exclude(reason="received").exists()  # only the opening goods-in


def test_goods_received_in_a_new_warehouse_open_its_stock_row(tshirt):
    second = Warehouse.objects.create(code="SH01", name="上海仓")
    level = stock_receive(sku=tshirt, warehouse=second, quantity=12)
    assert (level.warehouse, level.on_hand) == (second, 12)
    assert StockMovement.objects.get(stock_level=level).reason == "received"


def test_the_stock_admin_adjusts_through_the_service(level, admin_client):
    url = f"/admin/inventory/stocklevel/{level.pk}/change/"
    response = admin_client.post(url, {"delta": "-5", "reason": "damaged", "note": "破损"})
    assert response.status_code == 302, response.content.decode()[:2000]
    level.refresh_from_db()
    assert level.on_hand == 95
    assert StockMovement.objects.get(reason="damaged").note == "破损"
    page = admin_client.get(url).content.decode()
    assert 'name="on_hand"' not in page  # on_hand is shown, never typed into
    assert "破损" in page  # the movement is listed on the row


def test_the_stock_admin_shows_a_refusal_and_changes_nothing(level, admin_client):
    url = f"/admin/inventory/stocklevel/{level.pk}/change/"
    response = admin_client.post(url, {"delta": "-101", "reason": "damaged", "note": ""}, follow=True)
    assert "不能小于已预占数量" in response.content.decode()
    level.refresh_from_db()
    assert level.on_hand == 100


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_write_offs_never_take_stock_below_zero(level):
    """20 clerks each write off 10 of 100 units at once: exactly 10 succeed, the movements add up."""
    barrier = threading.Barrier(20)
    results: list[str] = []

    def write_off() -> None:
        try:
            barrier.wait()
            stock_adjust(sku=level.sku, warehouse=level.warehouse, delta=-10, reason="damaged", actor_label="t")
            results.append("ok")
        except StockAdjustmentRefused:
            results.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write_off) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    level.refresh_from_db()
    assert (results.count("ok"), results.count("refused"), level.on_hand) == (10, 10, 0)
    movements = list(
        StockMovement.objects.filter(reason="damaged").order_by("pk").values_list("on_hand_before", "on_hand_after")
    )
    assert movements == [(100 - 10 * i, 90 - 10 * i) for i in range(10)]
