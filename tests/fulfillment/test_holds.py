"""挂起 / 释放: a held order is never allocated, picked, merged or shipped until released, and releasing
it sends it on to allocation (at once, or when its release window ends)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from fulfillment.clock import orders_allocate_pending
from fulfillment.models import Shipment, ShipmentStatus
from fulfillment.services import (
    order_allocate,
    orders_awaiting_allocation,
    pick_wave_start,
    shipment_ship,
    shipments_merge,
)
from oms.errors import InvalidTransition, PermissionDenied, ValidationFailed
from orders import holds
from orders.events import Actor
from orders.holds import order_hold, order_release
from orders.models import Order, OrderEvent, OrderStatus

from .conftest import SYSTEM, allocated, order_for, paid

pytestmark = pytest.mark.django_db


@pytest.fixture
def kefu(staff):
    return Actor.staff(staff("客服"))


def test_a_held_order_is_not_allocated_until_released(hangzhou, stocked, kefu, django_capture_on_commit_callbacks):
    shirt = stocked({hangzhou: 10})
    order = paid(order_for([(shirt, 1)]))
    order_hold(order=order, actor=kefu, reason="顾客考虑换颜色")

    assert order_allocate(order=order) == []
    assert not orders_awaiting_allocation().filter(pk=order.pk).exists()
    assert orders_allocate_pending().allocated == 0
    assert not Shipment.objects.filter(lines__order=order).exists()

    with django_capture_on_commit_callbacks() as queued:
        order_release(order=order, actor=kefu)
    assert len(queued) == 1  # fulfillment.tasks.allocate_order
    assert orders_awaiting_allocation().filter(pk=order.pk).exists()
    assert len(order_allocate(order=order)) == 1
    types = list(order.events.values_list("type", flat=True))
    assert types[-3:] == [OrderEvent.Type.HELD, OrderEvent.Type.RELEASED, OrderEvent.Type.ALLOCATED]
    held = order.events.get(type=OrderEvent.Type.HELD)
    assert held.reason == "顾客考虑换颜色" and held.actor_user == kefu.user


def test_a_held_order_in_review_waits_after_approval_too(hangzhou, stocked, kefu, settings):
    settings.OMS_LARGE_ORDER_THRESHOLD = Decimal("50.00")
    shirt = stocked({hangzhou: 10})
    order = paid(order_for([(shirt, 1)]))
    assert order.status == OrderStatus.PAID  # large amount: waits for review
    order_hold(order=order, actor=kefu, reason="顾客要改地址")
    from orders.services import order_approve

    order_approve(order=order, actor=kefu, note="金额已核实")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.AWAITING_SHIPMENT
    assert order_allocate(order=order) == []


def test_pick_and_merge_refuse_a_held_orders_parcel(hangzhou, stocked, kefu, staff, settings):
    settings.OMS_AUTO_MERGE = False
    shirt = stocked({hangzhou: 10})
    first, second = order_for([(shirt, 1)]), order_for([(shirt, 2)])
    (a,) = allocated(first)
    (b,) = allocated(second)
    order_hold(order=first, actor=kefu, reason="顾客来电暂缓发货")
    warehouse = Actor.staff(staff("仓储"))

    with pytest.raises(InvalidTransition) as refused:
        pick_wave_start(warehouse=hangzhou, shipments=[a], actor=warehouse)
    assert "挂起" in refused.value.message and first.order_no in refused.value.message
    with pytest.raises(InvalidTransition):
        shipments_merge(shipments=[a, b], actor=warehouse)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.status == b.status == ShipmentStatus.PENDING and a.wave_id is None

    pick_wave_start(warehouse=hangzhou, shipments=[b], actor=warehouse)  # the other order is not held
    order_release(order=first, actor=kefu)
    wave = pick_wave_start(warehouse=hangzhou, shipments=[a], actor=warehouse)
    a.refresh_from_db()
    assert a.wave == wave and a.status == ShipmentStatus.PICKING


def test_a_parcel_picked_before_its_order_was_held_is_not_shipped(hangzhou, stocked, kefu, staff):
    shirt = stocked({hangzhou: 10})
    order = order_for([(shirt, 1)])
    (parcel,) = allocated(order)
    warehouse = Actor.staff(staff("仓储"))
    pick_wave_start(warehouse=hangzhou, shipments=[parcel], actor=warehouse)  # on the pick list already
    order_hold(order=order, actor=kefu, reason="疑似欺诈，核实后再发")

    with pytest.raises(InvalidTransition) as refused:
        shipment_ship(shipment=parcel, actor=warehouse, carrier="shunfeng", tracking_no="SF1234567890")
    assert "挂起的订单不能发货" in refused.value.message and order.order_no in refused.value.message
    assert Shipment.objects.get(pk=parcel.pk).status == ShipmentStatus.PICKING
    assert Order.objects.get(pk=order.pk).status == OrderStatus.AWAITING_SHIPMENT

    order_release(order=order, actor=kefu)
    shipped, changed = shipment_ship(shipment=parcel, actor=warehouse, carrier="shunfeng", tracking_no="SF1234567890")
    assert changed and shipped.status == ShipmentStatus.SHIPPED


def test_auto_merge_never_joins_a_held_orders_parcel(hangzhou, stocked, kefu):
    shirt = stocked({hangzhou: 10})
    first = order_for([(shirt, 1)])
    (a,) = allocated(first)
    order_hold(order=first, actor=kefu, reason="顾客考虑中")
    (b,) = allocated(order_for([(shirt, 1)]))  # same customer and address
    assert a != b


@pytest.mark.parametrize("state", ["pending_payment", "shipped", "cancelled"])
def test_only_a_paid_unshipped_order_can_be_held(hangzhou, stocked, kefu, state):
    from tests.fulfillment.factories import ship_whole_order
    from workflows.cancellation import order_cancel

    shirt = stocked({hangzhou: 10})
    order = order_for([(shirt, 1)])
    if state == "shipped":
        ship_whole_order(paid(order), actor=SYSTEM)
    elif state == "cancelled":
        order_cancel(order=order, actor=SYSTEM, reason="changed_mind")
    with pytest.raises(InvalidTransition):
        order_hold(order=order, actor=kefu, reason="试试")
    assert Order.objects.get(pk=order.pk).held_at is None


def test_hold_needs_a_reason_and_the_permission_and_release_needs_a_hold(hangzhou, stocked, kefu, staff):
    shirt = stocked({hangzhou: 10})
    order = paid(order_for([(shirt, 1)]))
    with pytest.raises(ValidationFailed):
        order_hold(order=order, actor=kefu, reason="  ")
    with pytest.raises(PermissionDenied):
        order_hold(order=order, actor=Actor.staff(staff("仓储")), reason="仓库想挂")
    with pytest.raises(InvalidTransition):
        order_release(order=order, actor=kefu)
    order_hold(order=order, actor=kefu, reason="顾客考虑中")
    with pytest.raises(InvalidTransition):
        order_hold(order=order, actor=kefu, reason="再挂一次")
    with pytest.raises(PermissionDenied):
        order_release(order=order, actor=Actor.staff(staff("仓储")))
    assert Order.objects.get(pk=order.pk).held_at is not None


def test_release_inside_the_release_window_queues_allocation_for_its_end(
    hangzhou, stocked, kefu, settings, monkeypatch
):
    settings.OMS_RELEASE_DELAY_MINUTES = 30
    queued = []
    monkeypatch.setattr(holds, "enqueue_on_commit", lambda name, *args, countdown=None: queued.append(countdown))
    shirt = stocked({hangzhou: 10})
    order = paid(order_for([(shirt, 1)]))
    order_hold(order=order, actor=kefu, reason="顾客考虑中")
    order_release(order=order, actor=kefu)
    assert queued and 29 * 60 <= queued[0] <= 30 * 60
    Order.objects.filter(pk=order.pk).update(approved_at=timezone.now() - timedelta(hours=1))
    order_hold(order=order, actor=kefu, reason="又来电")
    order_release(order=order, actor=kefu)
    assert queued[1] is None  # the window is over: at once
