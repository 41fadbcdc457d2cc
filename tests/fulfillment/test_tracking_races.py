"""Kuaidi100 pushes under real concurrency: threads against PostgreSQL, each with its own connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from fulfillment.models import Shipment, ShipmentStatus, TrackingEvent, TrackingPush
from fulfillment.services import shipment_ship
from tests.threads import run_in_threads

from .conftest import SYSTEM, order_for, paid
from .kuaidi100_doubles import PUSH_URL, celery_eager, push_form

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SCANS = [
    ("2026-03-02 18:00:00", "1", "【杭州市】已揽收"),
    ("2026-03-02 22:00:00", "0", "【杭州市】快件已发往 上海"),
    ("2026-03-03 06:00:00", "0", "【上海市】快件到达 上海集散中心"),
    ("2026-03-03 15:30:00", "3", "【上海市】已签收"),
]


@pytest.fixture
def shipped(hangzhou, stocked) -> Iterator[Shipment]:
    """A parcel shipped as SF1234567890; the after-commit jobs (allocation, subscription) run
    eagerly, so these committing tests send nothing to the broker."""
    with celery_eager():
        order = paid(order_for([(stocked({hangzhou: 10}), 1)]))
        parcel = Shipment.objects.get(lines__order=order)
        shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
        yield parcel


def test_the_same_push_delivered_ten_times_at_once_adds_its_events_once(shipped):
    parcel = shipped
    form = push_form("SF1234567890", "3", SCANS)

    statuses = run_in_threads(10, lambda _: Client().post(PUSH_URL, form).status_code)

    assert statuses == [200] * 10
    assert TrackingEvent.objects.filter(shipment=parcel).count() == 4
    assert sorted(TrackingPush.objects.values_list("status", flat=True)) == ["applied"] + ["duplicate"] * 9
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.DELIVERED
    order = parcel.lines.get().order
    assert order.events.filter(type="delivered").count() == 1


def test_different_pushes_of_one_parcel_at_once_keep_every_scan_and_the_highest_state(shipped):
    parcel = shipped
    forms = [push_form("SF1234567890", SCANS[i][1], SCANS[: i + 1]) for i in range(len(SCANS))] * 2

    statuses = run_in_threads(len(forms), lambda i: Client().post(PUSH_URL, forms[i]).status_code)

    assert statuses == [200] * len(forms)
    assert TrackingEvent.objects.filter(shipment=parcel).count() == 4
    parcel.refresh_from_db()
    assert (parcel.status, parcel.tracking_state) == (ShipmentStatus.DELIVERED, "delivered")
