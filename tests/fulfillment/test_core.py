"""Allocation, partial and merged parcels, shipping and the order's status, through the services."""

from __future__ import annotations

import pytest

from fulfillment.models import Shipment, ShipmentLine, ShipmentStatus
from fulfillment.services import (
    order_allocate,
    shipment_correct_tracking,
    shipment_deliver,
    shipment_return,
    shipment_ship,
    shipments_merge,
)
from inventory.models import Reservation, StockLevel
from oms.errors import InvalidTransition, PermissionDenied, ValidationFailed
from orders.events import Actor
from orders.models import FulfillmentStatus, OrderEvent, OrderStatus
from orders.services import order_complete
from workflows.address import order_change_address
from workflows.cancellation import order_cancel

from .conftest import SYSTEM, allocated, order_for, paid

pytestmark = pytest.mark.django_db


def level(sku, warehouse) -> StockLevel:
    return StockLevel.objects.get(sku=sku, warehouse=warehouse)


def test_one_warehouse_that_ships_everything_wins_over_priority(hangzhou, guangzhou, stocked):
    shirt = stocked({hangzhou: 1, guangzhou: 5})  # order_create reserves in pk order: 1 in HZ, 1 in GZ
    order = order_for([(shirt, 2)], province="浙江省")
    (shipment,) = allocated(order)
    assert shipment.warehouse == guangzhou  # HZ covers the province but cannot ship both units
    assert shipment.allocation["rule"] == "single_warehouse_priority"
    assert [(line.order_line.sku_code, line.quantity) for line in shipment.lines.all()] == [(shirt.code, 2)]
    # the reservations moved to the chosen warehouse, under lock
    assert level(shirt, hangzhou).reserved == 0
    assert level(shirt, guangzhou).reserved == 2
    assert Reservation.objects.filter(order_line__order=order, status="active").get().stock_level.warehouse == guangzhou


def test_province_then_priority(hangzhou, guangzhou, stocked):
    shirt = stocked({hangzhou: 5, guangzhou: 5})
    (to_guangdong,) = allocated(order_for([(shirt, 1)], province="广东省"))
    (to_sichuan,) = allocated(order_for([(shirt, 1)], province="四川省", mobile="13900139000"))
    assert to_guangdong.warehouse == guangzhou
    assert to_guangdong.allocation["rule"] == "single_warehouse_province"
    assert to_sichuan.warehouse == hangzhou  # nobody covers 四川; HZ has the better priority
    assert to_sichuan.allocation["rule"] == "single_warehouse_priority"


def test_split_across_two_warehouses_only_when_neither_holds_everything(hangzhou, guangzhou, stocked):
    shirt = stocked({hangzhou: 2, guangzhou: 0}, code="SHIRT")
    mug = stocked({guangzhou: 3}, code="MUG")
    order = order_for([(shirt, 2), (mug, 1)])
    shipments = allocated(order)
    assert {s.warehouse.code: [(ln.order_line.sku_code, ln.quantity) for ln in s.lines.all()] for s in shipments} == {
        "HZ01": [("SHIRT", 2)],
        "GZ01": [("MUG", 1)],
    }
    assert all(s.allocation["rule"] == "split" for s in shipments)
    event = order.events.get(type=OrderEvent.Type.ALLOCATED)
    assert event.data["warehouses"] == ["HZ01", "GZ01"]


def test_allocation_is_idempotent(hangzhou, stocked):
    shirt = stocked({hangzhou: 5})
    order = order_for([(shirt, 2)])
    allocated(order)
    assert order_allocate(order=order) == []
    assert Shipment.objects.count() == 1


def test_partial_shipment_leaves_the_rest_pending_then_the_order_ships(hangzhou, stocked):
    shirt = stocked({hangzhou: 10}, code="SHIRT")
    mug = stocked({hangzhou: 10}, code="MUG")
    order = order_for([(shirt, 2), (mug, 1)])
    (parcel,) = allocated(order)

    first, changed = shipment_ship(
        shipment=parcel,
        actor=SYSTEM,
        carrier="shunfeng",
        tracking_no="SF1234567890",
        lines=[{"sku": "SHIRT", "quantity": 1}],
    )
    assert changed
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_SHIPMENT
    assert order.fulfillment_status == FulfillmentStatus.PARTIALLY_SHIPPED
    rest = Shipment.objects.get(split_from=first)
    assert rest.status == ShipmentStatus.PENDING
    assert sorted((ln.order_line.sku_code, ln.quantity) for ln in rest.lines.all()) == [("MUG", 1), ("SHIRT", 1)]
    # on hand drops by exactly the unit shipped; the rest stays reserved
    assert (level(shirt, hangzhou).on_hand, level(shirt, hangzhou).reserved) == (9, 1)
    assert (level(mug, hangzhou).on_hand, level(mug, hangzhou).reserved) == (10, 1)

    shipment_ship(shipment=rest, actor=SYSTEM, carrier="yuantong", tracking_no="YT1234567890123")
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    assert order.fulfillment_status == FulfillmentStatus.SHIPPED
    assert (level(shirt, hangzhou).on_hand, level(shirt, hangzhou).reserved) == (8, 0)
    assert (level(mug, hangzhou).on_hand, level(mug, hangzhou).reserved) == (9, 0)

    shipment_deliver(shipment=first, actor=SYSTEM, at=first.shipped_at)
    order.refresh_from_db()
    assert order.delivered_at is None  # one parcel of two
    rest.refresh_from_db()
    shipment_deliver(shipment=rest, actor=SYSTEM, at=rest.shipped_at)
    order.refresh_from_db()
    assert order.fulfillment_status == FulfillmentStatus.DELIVERED
    assert order.delivered_at == rest.shipped_at


def test_ship_is_idempotent_on_the_tracking_number(hangzhou, stocked):
    shirt = stocked({hangzhou: 10})
    order = order_for([(shirt, 1)])
    (parcel,) = allocated(order)
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    again, changed = shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="sf1234567890")
    assert not changed
    with pytest.raises(InvalidTransition):
        shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567899")
    assert level(shirt, hangzhou).on_hand == 9
    assert order.events.filter(type=OrderEvent.Type.SHIPMENT_SHIPPED).count() == 1


@pytest.mark.parametrize(
    ("carrier", "tracking_no", "field"),
    [("x", "SF1234567890", "carrier"), ("shunfeng", "1", "tracking_no"), ("yuantong", "SF1234567890", "tracking_no")],
)
def test_carrier_and_tracking_number_are_checked(hangzhou, stocked, carrier, tracking_no, field):
    shirt = stocked({hangzhou: 10})
    (parcel,) = allocated(order_for([(shirt, 1)]))
    with pytest.raises(ValidationFailed) as refused:
        shipment_ship(shipment=parcel, actor=SYSTEM, carrier=carrier, tracking_no=tracking_no)
    assert field in refused.value.fields
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.PENDING
    assert level(shirt, hangzhou).on_hand == 10


def test_wrong_tracking_number_corrected_before_the_first_scan(hangzhou, stocked, staff):
    shirt = stocked({hangzhou: 10})
    order = order_for([(shirt, 1)])
    (parcel,) = allocated(order)
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    user = staff("仓储")
    shipment_correct_tracking(shipment=parcel, actor=Actor.staff(user), carrier="zhongtong", tracking_no="731234567890")
    parcel.refresh_from_db()
    assert (parcel.carrier, parcel.tracking_no) == ("zhongtong", "731234567890")
    event = order.events.get(type=OrderEvent.Type.TRACKING_CORRECTED)
    assert event.data["old"] == {"carrier": "shunfeng", "tracking_no": "SF1234567890"}
    assert event.data["new"] == {"carrier": "zhongtong", "tracking_no": "731234567890"}
    with pytest.raises(PermissionDenied):
        shipment_correct_tracking(
            shipment=parcel, actor=Actor.staff(staff("客服")), carrier="shunfeng", tracking_no="SF1234567891"
        )


def test_merged_parcel_of_two_orders_each_order_follows_its_own_lines(hangzhou, stocked, settings):
    settings.OMS_AUTO_MERGE = False
    shirt = stocked({hangzhou: 10})
    first = order_for([(shirt, 1)])
    second = order_for([(shirt, 2)])
    (a,) = allocated(first)
    (b,) = allocated(second)
    merged = shipments_merge(shipments=[a, b], actor=SYSTEM)
    b.refresh_from_db()
    assert b.status == ShipmentStatus.CANCELLED and b.merged_into == merged
    assert sorted(ShipmentLine.objects.filter(shipment=merged).values_list("order_id", "quantity")) == sorted(
        [(first.pk, 1), (second.pk, 2)]
    )
    shipment_ship(shipment=merged, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == OrderStatus.SHIPPED
    assert level(shirt, hangzhou).on_hand == 7


def test_auto_merge_puts_a_second_order_into_the_pending_parcel(hangzhou, stocked):
    shirt = stocked({hangzhou: 10})
    (a,) = allocated(order_for([(shirt, 1)]))
    (b,) = allocated(order_for([(shirt, 1)]))
    assert a == b
    other_address = order_for([(shirt, 1)], mobile="13900139000")
    (c,) = allocated(other_address)
    assert c != a


def test_merge_refuses_different_addresses(hangzhou, stocked, settings):
    settings.OMS_AUTO_MERGE = False
    shirt = stocked({hangzhou: 10})
    (a,) = allocated(order_for([(shirt, 1)]))
    (b,) = allocated(order_for([(shirt, 1)], mobile="13900139000"))
    with pytest.raises(ValidationFailed):
        shipments_merge(shipments=[a, b], actor=SYSTEM)


def test_address_change_splits_a_shared_parcel_and_is_refused_after_a_unit_shipped(hangzhou, stocked, staff):
    shirt = stocked({hangzhou: 10})
    first, second = order_for([(shirt, 2)]), order_for([(shirt, 1)])
    (shared,) = allocated(first)
    allocated(second)
    cs = Actor.staff(staff("客服"))
    order_change_address(order=second, actor=cs, address={"detail": "文一路1号"})
    assert set(ShipmentLine.objects.filter(shipment=shared).values_list("order_id", flat=True)) == {first.pk}
    assert ShipmentLine.objects.filter(order_id=second.pk, shipment__status="pending").count() == 1

    shipment_ship(
        shipment=shared,
        actor=SYSTEM,
        carrier="shunfeng",
        tracking_no="SF1234567890",
        lines=[{"sku": shirt.code, "quantity": 1}],
    )
    with pytest.raises(InvalidTransition):
        order_change_address(order=first, actor=cs, address={"detail": "文一路2号"})


def test_cancel_before_shipping_cancels_the_parcel_and_is_refused_after(hangzhou, stocked, staff):
    shirt = stocked({hangzhou: 10})
    order = order_for([(shirt, 2)])
    (parcel,) = allocated(order)
    cs = Actor.staff(staff("客服"))
    order_cancel(order=order, actor=cs, reason="changed_mind")
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.CANCELLED
    assert level(shirt, hangzhou).reserved == 0

    other = order_for([(shirt, 2)])
    (parcel,) = allocated(other)
    shipment_ship(
        shipment=parcel,
        actor=SYSTEM,
        carrier="shunfeng",
        tracking_no="SF1234567891",
        lines=[{"sku": shirt.code, "quantity": 1}],
    )
    with pytest.raises(InvalidTransition):
        order_cancel(order=other, actor=cs, reason="changed_mind")


def test_cod_delivered_collects_and_refused_comes_back_cancelled(hangzhou, stocked):
    shirt = stocked({hangzhou: 10})
    delivered = order_for([(shirt, 1)], payment_method="cod")
    (parcel,) = allocated(delivered)
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    delivered.refresh_from_db()
    with pytest.raises(InvalidTransition):  # never completed with nothing collected
        order_complete(order=delivered, actor=SYSTEM)
    parcel.refresh_from_db()
    shipment_deliver(shipment=parcel, actor=SYSTEM, at=parcel.shipped_at)
    delivered.refresh_from_db()
    assert delivered.paid_total == delivered.payable_total
    order_complete(order=delivered, actor=SYSTEM)

    refused = order_for([(shirt, 2)], payment_method="cod", mobile="13900139000")
    (parcel,) = allocated(refused)
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567891")
    assert level(shirt, hangzhou).on_hand == 7
    parcel.refresh_from_db()
    parcel.refuse()
    parcel.save()
    shipment_return(shipment=parcel, actor=SYSTEM, at=parcel.shipped_at)
    refused.refresh_from_db()
    assert refused.status == OrderStatus.CANCELLED
    assert refused.cancel_reason == "refused"
    assert level(shirt, hangzhou).on_hand == 9  # received back, as an audited movement
    assert level(shirt, hangzhou).movements.filter(reason="returned", delta=2).exists()


def test_ship_needs_the_permission(hangzhou, stocked, staff):
    shirt = stocked({hangzhou: 10})
    (parcel,) = allocated(order_for([(shirt, 1)]))
    with pytest.raises(PermissionDenied):
        shipment_ship(shipment=parcel, actor=Actor.staff(staff("客服")), carrier="shunfeng", tracking_no="SF1234567890")
    shipment_ship(shipment=parcel, actor=Actor.staff(staff("仓储")), carrier="shunfeng", tracking_no="SF1234567890")


def test_unpaid_order_is_not_allocated(hangzhou, stocked):
    shirt = stocked({hangzhou: 10})
    order = order_for([(shirt, 1)])
    assert order_allocate(order=order) == []
    paid(order)
    assert len(order_allocate(order=order)) == 1
