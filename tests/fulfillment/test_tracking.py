"""Kuaidi100 tracking through the HTTP endpoint, with pushes signed the way Kuaidi100 signs them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from fulfillment.models import (
    LogisticsException,
    Shipment,
    ShipmentStatus,
    TrackingEvent,
    TrackingPush,
    TrackingState,
    TrackingSubscription,
)
from fulfillment.services import shipment_ship
from fulfillment.tracking import state_advances
from inventory.models import StockLevel
from orders.models import FulfillmentStatus, OrderEvent, OrderStatus
from orders.services import order_confirm_receipt_overdue

from .conftest import SYSTEM, allocated, order_for
from .kuaidi100_doubles import PUSH_URL, kuaidi100_sign, push_form

pytestmark = pytest.mark.django_db
CHINA = ZoneInfo("Asia/Shanghai")
TS = TrackingState
PICKUP = ("2026-03-02 18:00:00", "1", "【杭州市】顺丰速运 已收取快件")
LEAVE = ("2026-03-02 22:00:00", "0", "【杭州市】快件已发往 上海")
ARRIVE = ("2026-03-03 06:00:00", "0", "【上海市】快件到达 上海集散中心")
OUT = ("2026-03-03 09:00:00", "5", "【上海市】快递员正在派件")
SIGNED = ("2026-03-03 15:30:00", "3", "【上海市】已签收，签收人：本人")
SIGNED_AT = datetime(2026, 3, 3, 15, 30, tzinfo=CHINA)


def china(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)


def ship(stocked, hangzhou, *, tracking_no="SF1234567890", carrier="shunfeng", **order_kwargs) -> Shipment:
    sku = stocked({hangzhou: 10})
    order = order_for([(sku, 1)], **order_kwargs)
    (parcel,) = allocated(order)
    shipped, _ = shipment_ship(shipment=parcel, actor=SYSTEM, carrier=carrier, tracking_no=tracking_no)
    return shipped


def post(client, form: dict[str, str]):
    return client.post(PUSH_URL, form)


def test_bad_signature_answers_400_and_changes_nothing_but_a_rejected_row(client, hangzhou, stocked):
    parcel = ship(stocked, hangzhou)
    form = push_form(parcel.tracking_no, "3", [PICKUP, SIGNED])
    for bad in (
        {**form, "sign": form["sign"][:-1] + ("0" if form["sign"][-1] != "0" else "1")},
        push_form(parcel.tracking_no, "3", [PICKUP, SIGNED], salt="someone-elses-salt"),
        {"param": form["param"]},
    ):
        response = post(client, bad)
        assert response.status_code == 400
        assert response.json()["result"] is False
        assert response.json()["returnCode"] == "500"
    assert list(TrackingPush.objects.values_list("status", flat=True)) == ["rejected"] * 3
    assert TrackingPush.objects.filter(shipment__isnull=False).count() == 0
    assert TrackingEvent.objects.count() == 0
    parcel.refresh_from_db()
    assert (parcel.status, parcel.tracking_state, parcel.delivered_at) == (ShipmentStatus.SHIPPED, "", None)


def test_good_push_answers_as_kuaidi100_expects_and_stores_events(client, hangzhou, stocked):
    parcel = ship(stocked, hangzhou)
    response = post(client, push_form(parcel.tracking_no, "0", [PICKUP, LEAVE]))
    assert response.status_code == 200
    assert json.loads(response.content) == {"result": True, "returnCode": "200", "message": "成功"}
    parcel.refresh_from_db()
    assert parcel.tracking_state == TS.IN_TRANSIT
    assert parcel.picked_up_at == china(PICKUP[0])
    assert parcel.last_tracking_at == china(LEAVE[0])
    assert [(e.time, e.state, e.context) for e in parcel.tracking_events.all()] == [
        (china(PICKUP[0]), TS.PICKED_UP, PICKUP[2]),
        (china(LEAVE[0]), TS.IN_TRANSIT, LEAVE[2]),
    ]
    push = TrackingPush.objects.get()
    assert (push.status, push.shipment, push.events_added) == ("applied", parcel, 2)


def test_duplicate_push_adds_no_events(client, hangzhou, stocked):
    parcel = ship(stocked, hangzhou)
    form = push_form(parcel.tracking_no, "0", [PICKUP, LEAVE])
    assert post(client, form).status_code == 200
    assert post(client, form).status_code == 200  # Kuaidi100 resends until it reads our answer
    assert TrackingEvent.objects.filter(shipment=parcel).count() == 2
    assert list(TrackingPush.objects.order_by("pk").values_list("status", "events_added")) == [
        ("applied", 2),
        ("duplicate", 0),
    ]
    # the next push repeats the old scans (Kuaidi100 always sends them all) and adds only the new one
    post(client, push_form(parcel.tracking_no, "0", [PICKUP, LEAVE, ARRIVE]))
    assert TrackingEvent.objects.filter(shipment=parcel).count() == 3


def test_out_of_order_push_never_downgrades(client, hangzhou, stocked):
    parcel = ship(stocked, hangzhou)
    post(client, push_form(parcel.tracking_no, "3", [PICKUP, LEAVE, SIGNED]))
    # an older snapshot, delivered late, carries a scan we had not seen
    post(client, push_form(parcel.tracking_no, "0", [PICKUP, LEAVE, ARRIVE]))
    # and a carrier that scans "in transit" after the signature
    late = ("2026-03-04 08:00:00", "0", "【上海市】快件已到达 上海集散中心（补录）")
    post(client, push_form(parcel.tracking_no, "0", [PICKUP, LEAVE, SIGNED, late]))
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.DELIVERED
    assert parcel.tracking_state == TS.DELIVERED
    assert parcel.delivered_at == SIGNED_AT
    assert parcel.tracking_events.count() == 5  # the late scans are kept
    assert parcel.last_tracking_at == china(late[0])


@pytest.mark.parametrize(
    ("current", "new", "moves"),
    [
        ("", TS.PICKED_UP, True),
        (TS.PICKED_UP, TS.IN_TRANSIT, True),
        (TS.IN_TRANSIT, TS.TRANSFERRED, True),
        (TS.OUT_FOR_DELIVERY, TS.IN_TRANSIT, False),
        (TS.OUT_FOR_DELIVERY, TS.DELIVERED, True),
        (TS.DELIVERED, TS.IN_TRANSIT, False),
        (TS.DELIVERED, TS.PROBLEM, False),
        (TS.IN_TRANSIT, TS.PROBLEM, True),
        (TS.OUT_FOR_DELIVERY, TS.PROBLEM, True),
        (TS.PROBLEM, TS.IN_TRANSIT, True),
        (TS.OUT_FOR_DELIVERY, TS.REFUSED, True),
        (TS.REFUSED, TS.OUT_FOR_DELIVERY, False),
        (TS.REFUSED, TS.DELIVERED, False),
        (TS.REFUSED, TS.RETURNING, True),
        (TS.RETURNING, TS.RETURNED_SIGNED, True),
        (TS.RETURNED_SIGNED, TS.DELIVERED, False),
    ],
)
def test_state_rank(current, new, moves):
    assert state_advances(current, new) is moves


def test_signed_push_sets_delivered_at_and_auto_confirmation_counts_from_it(client, hangzhou, stocked):
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=CHINA), tick=False) as traveller:
        parcel = ship(stocked, hangzhou)
        order = parcel.lines.get().order
        post(client, push_form(parcel.tracking_no, "3", [PICKUP, LEAVE, ARRIVE, OUT, SIGNED]))
        parcel.refresh_from_db()
        order.refresh_from_db()
        assert parcel.delivered_at == order.delivered_at == SIGNED_AT
        assert order.fulfillment_status == FulfillmentStatus.DELIVERED
        assert order.events.filter(type=OrderEvent.Type.DELIVERED).count() == 1

        traveller.move_to(SIGNED_AT + timedelta(days=7) - timedelta(minutes=1))
        assert order_confirm_receipt_overdue() == 0
        traveller.move_to(SIGNED_AT + timedelta(days=7, minutes=1))  # before shipped_at + 10 days
        assert order_confirm_receipt_overdue() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED


def test_end_to_end_partial_shipment_then_signed_pushes_then_auto_confirmation(client, hangzhou, stocked):
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=CHINA), tick=False) as traveller:
        shirt = stocked({hangzhou: 10}, code="SHIRT")
        mug = stocked({hangzhou: 10}, code="MUG")
        order = order_for([(shirt, 2), (mug, 1)])
        (parcel,) = allocated(order)  # paid → 待发货 → order_allocate
        order.refresh_from_db()
        assert order.status == OrderStatus.AWAITING_SHIPMENT

        first, _ = shipment_ship(
            shipment=parcel,
            actor=SYSTEM,
            carrier="shunfeng",
            tracking_no="SF1234567890",
            lines=[{"sku": "SHIRT", "quantity": 2}],
        )
        order.refresh_from_db()
        assert (order.status, order.fulfillment_status) == (
            OrderStatus.AWAITING_SHIPMENT,
            FulfillmentStatus.PARTIALLY_SHIPPED,
        )
        traveller.shift(timedelta(hours=2))
        rest, _ = shipment_ship(
            shipment=Shipment.objects.get(split_from=first),
            actor=SYSTEM,
            carrier="yuantong",
            tracking_no="YT1234567890123",
        )
        order.refresh_from_db()
        assert (order.status, order.fulfillment_status) == (OrderStatus.SHIPPED, FulfillmentStatus.SHIPPED)
        assert TrackingSubscription.objects.filter(shipment__in=[first, rest], status="pending").count() == 2

        traveller.move_to(datetime(2026, 3, 3, 16, 0, tzinfo=CHINA))
        post(client, push_form("SF1234567890", "3", [PICKUP, LEAVE, SIGNED]))
        order.refresh_from_db()
        assert order.delivered_at is None  # one parcel of two
        rest_signed = ("2026-03-04 11:00:00", "3", "【上海市】已签收（圆通）")
        post(client, push_form("YT1234567890123", "3", [PICKUP, rest_signed], com="yuantong"))
        order.refresh_from_db()
        assert order.fulfillment_status == FulfillmentStatus.DELIVERED
        assert order.delivered_at == china(rest_signed[0])

        traveller.move_to(china(rest_signed[0]) + timedelta(days=7) - timedelta(seconds=1))
        assert order_confirm_receipt_overdue() == 0
        traveller.move_to(china(rest_signed[0]) + timedelta(days=7))
        assert order_confirm_receipt_overdue() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED


def test_problem_parcel_opens_a_logistics_exception(client, hangzhou, stocked):
    parcel = ship(stocked, hangzhou)
    problem = ("2026-03-03 07:00:00", "2", "【上海市】收件地址不详，快件滞留")
    form = push_form(parcel.tracking_no, "2", [PICKUP, LEAVE, problem])
    post(client, form)
    post(client, push_form(parcel.tracking_no, "2", [PICKUP, LEAVE, problem], message="again"))
    parcel.refresh_from_db()
    assert (parcel.status, parcel.tracking_state) == (ShipmentStatus.EXCEPTION, TS.PROBLEM)
    case = LogisticsException.objects.get(shipment=parcel)
    assert (case.kind, case.last_event, case.resolved_at) == ("problem", problem[2], None)
    order = parcel.lines.get().order
    assert order.events.filter(type=OrderEvent.Type.LOGISTICS_EXCEPTION, data__kind="problem").count() == 1
    # the carrier sorts it out and delivers: the parcel is delivered from the exception state
    post(client, push_form(parcel.tracking_no, "3", [PICKUP, LEAVE, problem, SIGNED]))
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.DELIVERED


def test_cod_refused_then_returned_cancels_the_order_and_puts_stock_back(client, hangzhou, stocked):
    parcel = ship(stocked, hangzhou, payment_method="cod")
    order = parcel.lines.get().order
    sku = parcel.lines.get().order_line.sku
    level = StockLevel.objects.get(sku=sku, warehouse=hangzhou)
    assert level.on_hand == 9
    refused = ("2026-03-03 10:00:00", "14", "【上海市】收件人拒收")
    post(client, push_form(parcel.tracking_no, "14", [PICKUP, LEAVE, OUT, refused]))
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.REFUSED
    assert LogisticsException.objects.filter(shipment=parcel, kind="refused").exists()
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED  # the goods are still on the road

    returning = ("2026-03-03 18:00:00", "6", "【上海市】退回件已发出")
    post(client, push_form(parcel.tracking_no, "6", [PICKUP, LEAVE, OUT, refused, returning]))
    back = ("2026-03-05 09:00:00", "4", "【杭州市】退回件已由寄件人签收")
    post(client, push_form(parcel.tracking_no, "4", [PICKUP, LEAVE, OUT, refused, returning, back]))
    parcel.refresh_from_db()
    assert (parcel.status, parcel.returned_at) == (ShipmentStatus.RETURNED, china(back[0]))
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert order.cancel_reason == "refused"
    assert order.paid_total == 0
    level.refresh_from_db()
    assert level.on_hand == 10
    assert level.movements.filter(reason="returned", delta=1).exists()
    assert LogisticsException.objects.filter(shipment=parcel, kind="returned", resolved_at__isnull=True).exists()


def test_unknown_parcel_is_acknowledged_and_kept(client, hangzhou, stocked):
    ship(stocked, hangzhou)
    response = post(client, push_form("SF9999999999", "0", [PICKUP]))
    assert response.status_code == 200
    assert TrackingPush.objects.get().status == "unmatched"
    unreadable = '{"lastResult": "nope"'
    response = client.post(PUSH_URL, {"param": unreadable, "sign": ""})
    assert response.status_code == 400  # unsigned: rejected
    response = client.post(PUSH_URL, {"param": unreadable, "sign": kuaidi100_sign(unreadable)})
    assert response.status_code == 200  # signed but unreadable: kept for a person, not resent forever
    assert TrackingPush.objects.filter(status="unmatched").count() == 2


def test_abort_resubscribes_once_then_opens_an_aborted_case(client, hangzhou, stocked):
    parcel = ship(stocked, hangzhou)
    abort = push_form(parcel.tracking_no, "0", [], status="abort", message="3天查询无记录")
    post(client, abort)
    assert TrackingSubscription.objects.filter(shipment=parcel).count() == 2
    assert not LogisticsException.objects.filter(shipment=parcel).exists()
    post(client, push_form(parcel.tracking_no, "0", [], status="abort", message="3天查询无记录 (2)"))
    assert TrackingSubscription.objects.filter(shipment=parcel).count() == 2
    case = LogisticsException.objects.get(shipment=parcel)
    assert (case.kind, case.last_event) == ("aborted", "3天查询无记录 (2)")


def test_autocheck_corrects_the_carrier_with_old_and_new_on_the_timeline(client, hangzhou, stocked):
    parcel = ship(stocked, hangzhou, tracking_no="731234567890", carrier="zhongtong")
    order = parcel.lines.get().order
    form = push_form(
        "731234567890", "0", [PICKUP], com="shentong", autoCheck="1", comOld="zhongtong", comNew="shentong"
    )
    assert post(client, form).status_code == 200
    parcel.refresh_from_db()
    assert parcel.carrier == "shentong"
    assert parcel.tracking_events.count() == 1
    event = order.events.get(type=OrderEvent.Type.TRACKING_CORRECTED)
    assert event.data["old"] == {"carrier": "zhongtong", "tracking_no": "731234567890"}
    assert event.data["new"] == {"carrier": "shentong", "tracking_no": "731234567890"}
    order.refresh_from_db()
    assert order.carrier == "shentong"
    # later pushes name the corrected carrier and still find the parcel
    post(client, push_form("731234567890", "0", [PICKUP, LEAVE], com="shentong"))
    assert parcel.tracking_events.count() == 2


def test_a_transit_push_costs_a_fixed_number_of_queries(client, hangzhou, stocked, django_assert_max_num_queries):
    parcel = ship(stocked, hangzhou)
    post(client, push_form(parcel.tracking_no, "1", [PICKUP]))
    with django_assert_max_num_queries(8):
        post(client, push_form(parcel.tracking_no, "0", [PICKUP, LEAVE, ARRIVE]))
    with django_assert_max_num_queries(8):
        post(client, push_form(parcel.tracking_no, "0", [PICKUP, LEAVE, ARRIVE, OUT]))
