"""Fulfillment's clock: no pickup, stale tracking, ship-by overdue and the allocation sweep, with
time moved by time-machine; each job run twice does its work once."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django_celery_beat.models import PeriodicTask

from fulfillment.clock import (
    AllocationReport,
    orders_allocate_pending,
    shipments_alert_no_pickup,
    shipments_alert_stale,
    shipments_flag_overdue,
    shipments_overdue,
)
from fulfillment.models import LogisticsException, Shipment, ShipmentStatus, TrackingEvent, TrackingState
from fulfillment.services import logistics_exception_resolve, shipment_deliver, shipment_ship
from fulfillment.tasks import allocate_pending_orders, flag_overdue_shipments
from orders.events import Actor
from orders.models import OrderEvent

from .conftest import SYSTEM, allocated, order_for, paid

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture
def clock(time_machine):
    def move(moment: datetime) -> datetime:
        time_machine.move_to(moment, tick=False)
        return moment

    move(T0)
    return move


@pytest.fixture
def shipped(clock, hangzhou, stocked):
    """shipped(at, tracking_no) -> a parcel of a new paid order, handed to 顺丰 at `at`."""
    shirt = stocked({hangzhou: 50})

    def make(at: datetime = T0, tracking_no: str = "SF1234567890", mobile: str = "13800138000") -> Shipment:
        clock(at)
        (parcel,) = allocated(order_for([(shirt, 1)], mobile=mobile))
        parcel, _ = shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no=tracking_no)
        return parcel

    return make


def scan(
    parcel: Shipment, at: datetime, state: str = TrackingState.IN_TRANSIT, context: str = "【杭州】已发出"
) -> None:
    """What an applied tracking push leaves on the parcel (the tracking module writes these)."""
    TrackingEvent.objects.create(shipment=parcel, time=at, state=state, context=context)
    changes = {"last_tracking_at": at, "tracking_state": state}
    if state == TrackingState.PICKED_UP:
        changes["picked_up_at"] = at
    Shipment.objects.filter(pk=parcel.pk).update(**changes)


def cases(parcel: Shipment, kind: str) -> list[LogisticsException]:
    return list(LogisticsException.objects.filter(shipment=parcel, kind=kind))


# --- no pickup -------------------------------------------------------------------------------


def test_no_pickup_within_24_hours_opens_one_case(clock, shipped):
    parcel = shipped()
    clock(T0 + timedelta(hours=23, minutes=59))
    assert shipments_alert_no_pickup().found == 0

    clock(T0 + timedelta(hours=24, minutes=1))
    assert shipments_alert_no_pickup().found == 1
    assert shipments_alert_no_pickup().found == 0  # the job ran twice
    [case] = cases(parcel, LogisticsException.Kind.NO_PICKUP)
    assert case.resolved_at is None
    assert case.last_event == "发货 24 小时后仍无揽收记录（顺丰速运 SF1234567890）"
    [order_id] = parcel.lines.values_list("order_id", flat=True).distinct()
    event = OrderEvent.objects.get(order_id=order_id, type=OrderEvent.Type.LOGISTICS_EXCEPTION)
    assert (event.actor_label, event.data["kind"]) == ("alert_no_pickup", "no_pickup")


def test_a_parcel_that_got_its_pickup_scan_gets_no_alert(clock, shipped):
    picked = shipped()
    silent = shipped(tracking_no="SF1234567891", mobile="13900139000")
    scan(picked, T0 + timedelta(hours=3), TrackingState.PICKED_UP, "【杭州】顺丰速运 已收取快件")
    clock(T0 + timedelta(hours=30))
    assert shipments_alert_no_pickup().found == 1
    assert cases(picked, "no_pickup") == []
    assert len(cases(silent, "no_pickup")) == 1


def test_any_scan_counts_as_handed_over_and_a_resolved_case_stays_resolved(clock, shipped, staff):
    scanned = shipped()  # the carrier skipped 揽收 and went straight to 在途
    scan(scanned, T0 + timedelta(hours=5))
    silent = shipped(tracking_no="SF1234567891", mobile="13900139000")
    clock(T0 + timedelta(hours=25))
    shipments_alert_no_pickup()
    assert cases(scanned, "no_pickup") == []
    [case] = cases(silent, "no_pickup")
    logistics_exception_resolve(case=case, actor=Actor.staff(staff("客服")), outcome="contact_customer")
    clock(T0 + timedelta(hours=40))
    assert shipments_alert_no_pickup().found == 0


# --- stale tracking ------------------------------------------------------------------------


def test_no_tracking_update_for_48_hours_opens_one_stale_case(clock, shipped):
    parcel = shipped()
    scan(parcel, T0 + timedelta(hours=2), TrackingState.PICKED_UP, "【杭州】已揽收")
    scan(parcel, T0 + timedelta(hours=10), TrackingState.IN_TRANSIT, "【杭州转运中心】已发出")
    clock(T0 + timedelta(hours=57, minutes=59))  # 47h59m after the last scan
    assert shipments_alert_stale().found == 0

    clock(T0 + timedelta(hours=58, minutes=1))
    assert shipments_alert_stale().found == 1
    assert shipments_alert_stale().found == 0
    [case] = cases(parcel, "stale")
    assert case.last_event == "【杭州转运中心】已发出"


def test_a_parcel_never_scanned_counts_from_its_ship_time_and_is_reported_once(clock, shipped):
    parcel = shipped()
    clock(T0 + timedelta(hours=49))
    assert shipments_alert_stale().found == 1  # no_pickup never ran: stale catches it
    assert shipments_alert_no_pickup().found == 1
    other = shipped(at=T0 + timedelta(hours=49), tracking_no="SF1234567891", mobile="13900139000")
    clock(T0 + timedelta(hours=49 + 25))
    assert shipments_alert_no_pickup().found == 1
    clock(T0 + timedelta(hours=49 + 49))
    assert shipments_alert_stale().found == 0  # `other` has an open no_pickup case: the same problem
    assert len(cases(parcel, "stale")) == 1 and cases(other, "stale") == []


def test_exception_parcels_are_watched_delivered_ones_are_not(clock, shipped):
    problem = shipped()
    problem.flag_exception()
    problem.save()
    delivered = shipped(tracking_no="SF1234567891", mobile="13900139000")
    scan(delivered, T0 + timedelta(hours=20), TrackingState.DELIVERED, "已签收")
    shipment_deliver(shipment=delivered, actor=SYSTEM, at=T0 + timedelta(hours=20))
    clock(T0 + timedelta(days=10))
    assert shipments_alert_stale().found == 1
    assert len(cases(problem, "stale")) == 1 and cases(delivered, "stale") == []


def test_after_a_stale_case_is_resolved_the_clock_restarts(clock, shipped, staff):
    parcel = shipped()
    scan(parcel, T0 + timedelta(hours=1), TrackingState.PICKED_UP)
    clock(T0 + timedelta(hours=50))
    shipments_alert_stale()
    [case] = cases(parcel, "stale")
    logistics_exception_resolve(case=case, actor=Actor.staff(staff("客服")), outcome="carrier_claim")
    clock(T0 + timedelta(hours=60))
    assert shipments_alert_stale().found == 0  # not again at every run
    clock(T0 + timedelta(hours=50 + 48, minutes=1))
    assert shipments_alert_stale().found == 1  # still silent a whole period after the resolution
    assert len(cases(parcel, "stale")) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_overlapping_runs_open_each_case_once(clock, shipped):
    parcels = [shipped(tracking_no=f"SF12345678{i:02d}", mobile=f"138000000{i:02d}") for i in range(6)]
    clock(T0 + timedelta(hours=50))
    barrier = threading.Barrier(2)
    found, errors = [], []

    def run():
        try:
            barrier.wait()
            found.append(shipments_alert_stale(batch_size=2).found)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(found) == 6
    assert LogisticsException.objects.filter(kind="stale", shipment__in=parcels).count() == 6


# --- ship-by overdue -----------------------------------------------------------------------


def test_a_parcel_not_shipped_by_its_deadline_is_flagged_once_per_order(clock, hangzhou, stocked):
    shirt = stocked({hangzhou: 10})
    order = order_for([(shirt, 1)])
    (late,) = allocated(order)
    on_time_order = order_for([(shirt, 1)], mobile="13900139000")
    (on_time,) = allocated(on_time_order)
    assert late.ship_by == T0 + timedelta(hours=48)

    clock(T0 + timedelta(hours=20))
    shipment_ship(shipment=on_time, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    clock(T0 + timedelta(hours=47))
    assert list(shipments_overdue()) == []
    clock(T0 + timedelta(hours=49))
    assert list(shipments_overdue()) == [late]
    assert flag_overdue_shipments() == {"found": 1, "skipped": 0, "overdue": 1}
    assert shipments_flag_overdue().found == 0  # ran twice
    event = order.events.get(type=OrderEvent.Type.SHIP_OVERDUE)
    assert event.data["shipment_no"] == late.shipment_no
    assert not on_time_order.events.filter(type=OrderEvent.Type.SHIP_OVERDUE).exists()

    shipment_ship(shipment=late, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567891")
    assert list(shipments_overdue()) == []
    assert LogisticsException.objects.count() == 0  # nothing shipped late is a logistics case


# --- the allocation sweep ------------------------------------------------------------------


def test_the_sweep_allocates_an_order_whose_message_was_lost(clock, hangzhou, stocked):
    shirt = stocked({hangzhou: 5})
    order = paid(order_for([(shirt, 2)]))  # the allocate_order message never ran (no commit here)
    assert not Shipment.objects.exists()
    assert allocate_pending_orders() == {"allocated": 1, "unallocatable": []}
    [parcel] = Shipment.objects.all()
    assert (parcel.status, parcel.warehouse) == (ShipmentStatus.PENDING, hangzhou)
    assert order.events.filter(type=OrderEvent.Type.ALLOCATED).count() == 1
    assert allocate_pending_orders()["allocated"] == 0


def test_the_sweep_waits_for_the_release_delay(clock, settings, hangzhou, stocked):
    settings.OMS_RELEASE_DELAY_MINUTES = 30
    shirt = stocked({hangzhou: 5})
    paid(order_for([(shirt, 1)]))
    clock(T0 + timedelta(minutes=29))
    assert allocate_pending_orders()["allocated"] == 0
    clock(T0 + timedelta(minutes=31))
    assert allocate_pending_orders()["allocated"] == 1
    assert Shipment.objects.get().ship_by == T0 + timedelta(hours=48)  # counted from approval


def test_one_order_no_warehouse_can_ship_does_not_hold_up_the_others(clock, hangzhou, guangzhou, stocked, caplog):
    shirt = stocked({hangzhou: 5})
    mug = stocked({guangzhou: 5}, code="MUG")
    stuck = paid(order_for([(shirt, 1)]))  # approved first, so first in the sweep's queue
    hangzhou.active = False  # its stock is now in a warehouse that ships nothing
    hangzhou.save()
    clock(T0 + timedelta(minutes=1))
    fine = paid(order_for([(mug, 1)], mobile="13900139000"))
    assert orders_allocate_pending() == AllocationReport(allocated=1, unallocatable=(stuck.order_no,))
    assert Shipment.objects.get().lines.get().order == fine
    assert stuck.order_no in caplog.text


def test_default_schedules_exist_and_are_editable_rows():
    tasks = dict(PeriodicTask.objects.values_list("task", "interval__every"))
    assert tasks["fulfillment.tasks.allocate_pending_orders"] == 60
    assert tasks["fulfillment.tasks.alert_parcels_without_pickup"] == 1800
    assert tasks["fulfillment.tasks.alert_stale_tracking"] == 3600
    assert tasks["fulfillment.tasks.flag_overdue_shipments"] == 600


def test_an_idle_run_costs_one_query_and_a_busy_one_a_few_per_parcel(
    clock, shipped, django_assert_max_num_queries, django_assert_num_queries
):
    parcels = [shipped(tracking_no=f"SF12345678{i:02d}", mobile=f"138000000{i:02d}") for i in range(6)]
    with django_assert_num_queries(1):
        assert shipments_alert_stale().found == 0
    with django_assert_num_queries(1):
        assert shipments_alert_no_pickup().found == 0
    with django_assert_num_queries(1):
        assert shipments_flag_overdue().found == 0
    clock(T0 + timedelta(hours=50))
    # per batch: find, lines, lock orders, lock parcels, savepoint pair; per parcel: its last scan
    # and logistics_exception_open (check, case, its orders, one timeline entry, savepoint pair)
    with django_assert_max_num_queries(6 * 2 + 8 * len(parcels)):
        assert shipments_alert_stale(batch_size=4).found == len(parcels)


def test_a_merged_overdue_parcel_is_flagged_on_each_of_its_orders(clock, hangzhou, stocked):
    shirt = stocked({hangzhou: 10})
    first, second = order_for([(shirt, 1)]), order_for([(shirt, 2)])  # same customer and address: 合单
    (parcel,) = allocated(first)
    assert allocated(second) == [parcel]
    clock(T0 + timedelta(hours=49))
    assert shipments_flag_overdue().found == 1
    assert shipments_flag_overdue().found == 0
    for order in (first, second):
        assert order.events.filter(type=OrderEvent.Type.SHIP_OVERDUE, data__shipment_no=parcel.shipment_no).count() == 1
