"""Subscribing parcels at Kuaidi100 (a real HTTP server on 127.0.0.1 plays its poll API), and
the sandbox carrier, whose really signed pushes go through the same endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from fulfillment import kuaidi100
from fulfillment.models import LogisticsException, Shipment, ShipmentStatus, TrackingPush, TrackingSubscription
from fulfillment.sandbox import sandbox_push_build, script_of
from fulfillment.services import shipment_correct_tracking, shipment_ship
from fulfillment.tasks import redeliver_tracking_subscriptions, sandbox_carrier_push, subscribe_tracking
from inventory.models import StockLevel
from oms.errors import ValidationFailed
from orders.events import Actor
from orders.models import OrderStatus

from .conftest import SYSTEM, allocated, order_for, paid
from .kuaidi100_doubles import PUSH_URL, PollServer, celery_eager, kuaidi100_sign, poll_api

pytestmark = pytest.mark.django_db


@pytest.fixture
def poll_server(settings) -> Iterator[PollServer]:
    with poll_api(settings) as server:
        yield server


@pytest.fixture
def eager_celery() -> Iterator[None]:
    with celery_eager():
        yield


def ship(stocked, hangzhou, *, carrier="shunfeng", tracking_no="SF1234567890", **order_kwargs) -> Shipment:
    sku = stocked({hangzhou: 10})
    (parcel,) = allocated(order_for([(sku, 1)], **order_kwargs))
    shipped, _ = shipment_ship(shipment=parcel, actor=SYSTEM, carrier=carrier, tracking_no=tracking_no)
    return shipped


def subscription_of(parcel: Shipment) -> TrackingSubscription:
    return TrackingSubscription.objects.filter(shipment=parcel).latest("pk")


# --- Kuaidi100 poll API --------------------------------------------------------------------


def test_subscribe_posts_the_documented_form(poll_server: PollServer, hangzhou, stocked, settings):
    settings.OMS_SITE_URL = "https://oms.example.com/"
    parcel = ship(stocked, hangzhou)
    assert subscribe_tracking(parcel.pk) == 1
    (form,) = poll_server.forms
    assert form["schema"] == "json"
    param = json.loads(form["param"])
    assert param == {
        "company": "shunfeng",
        "number": "SF1234567890",
        "key": "test-key",
        "parameters": {
            "callbackurl": "https://oms.example.com/fulfillment/tracking/kuaidi100/",
            "salt": settings.KUAIDI100_SALT,
            "resultv2": "1",
            "phone": "13800138000",  # 顺丰 needs the receiver's phone
        },
    }
    row = subscription_of(parcel)
    assert (row.status, row.attempts, row.last_error) == ("subscribed", 1, "")
    assert row.subscribed_at is not None
    assert subscribe_tracking(parcel.pk) == 0  # nothing pending any more
    assert len(poll_server.forms) == 1


def test_already_subscribed_counts_as_subscribed(poll_server: PollServer, hangzhou, stocked):
    poll_server.answers.append((200, {"result": False, "returnCode": "501", "message": "重复订阅"}))
    parcel = ship(stocked, hangzhou, carrier="yuantong", tracking_no="YT1234567890123")
    subscribe_tracking(parcel.pk)
    assert "phone" not in json.loads(poll_server.forms[0]["param"])["parameters"]
    assert subscription_of(parcel).status == "subscribed"


def test_a_failure_leaves_the_row_pending_and_the_redelivery_job_retries_it(
    poll_server: PollServer, hangzhou, stocked, eager_celery
):
    poll_server.answers.extend(
        [
            (200, {"result": False, "returnCode": "700", "message": "订阅方的订阅数据存在错误"}),
            (500, {"message": "服务器错误"}),
        ]
    )
    parcel = ship(stocked, hangzhou)
    subscribe_tracking(parcel.pk)
    row = subscription_of(parcel)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "700" in row.last_error
    assert redeliver_tracking_subscriptions() == 0  # too fresh: its own task may still be running
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert redeliver_tracking_subscriptions() == 1  # answered 500: still pending
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("pending", 2)
        assert redeliver_tracking_subscriptions() == 1  # the default answer: 200
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("subscribed", 3)
    assert len(poll_server.forms) == 3


def test_an_unreachable_provider_leaves_the_row_pending(hangzhou, stocked, settings):
    settings.KUAIDI100_KEY = "test-key"
    settings.KUAIDI100_POLL_URL = "http://127.0.0.1:9/poll"  # discard port: connection refused
    parcel = ship(stocked, hangzhou)
    assert subscribe_tracking(parcel.pk) == 0
    row = subscription_of(parcel)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "ConnectionError" in row.last_error


def test_a_corrected_number_is_subscribed_and_the_old_one_given_up(poll_server: PollServer, hangzhou, stocked, staff):
    parcel = ship(stocked, hangzhou)
    shipment_correct_tracking(
        shipment=parcel, actor=Actor.staff(staff("仓储")), carrier="shunfeng", tracking_no="SF1234567891"
    )
    subscribe_tracking(parcel.pk)
    assert [json.loads(f["param"])["number"] for f in poll_server.forms] == ["SF1234567891"]
    assert dict(TrackingSubscription.objects.filter(shipment=parcel).values_list("tracking_no", "status")) == {
        "SF1234567890": "failed",
        "SF1234567891": "subscribed",
    }


# --- the sandbox carrier ---------------------------------------------------------------------


def sandbox_walk(client, tracking_no: str) -> list[int]:
    """Push every step of the sandbox script through the endpoint; returns the HTTP statuses."""
    started = timezone.now().replace(microsecond=0)
    return [
        client.post(PUSH_URL, sandbox_push_build(tracking_no=tracking_no, step=step, started_at=started)).status_code
        for step in range(len(script_of(tracking_no)))
    ]


def test_sandbox_pushes_are_real_signed_kuaidi100_pushes(client, hangzhou, stocked, settings):
    parcel = ship(stocked, hangzhou, carrier="sandbox", tracking_no="SB1234567890")
    started = timezone.now().replace(microsecond=0)
    form = sandbox_push_build(tracking_no="SB1234567890", step=1, started_at=started)
    assert form["sign"] == kuaidi100_sign(form["param"])  # the independent signer agrees
    param = json.loads(form["param"])
    assert param["lastResult"]["com"] == "sandbox"
    assert param["lastResult"]["state"] == "0"
    assert [d["status"] for d in param["lastResult"]["data"]] == ["在途", "揽收"]  # newest first

    assert sandbox_walk(client, "SB1234567890") == [200] * 5
    parcel.refresh_from_db()
    assert (parcel.status, parcel.tracking_state) == (ShipmentStatus.DELIVERED, "delivered")
    assert parcel.tracking_events.count() == 5
    assert parcel.lines.get().order.delivered_at == parcel.delivered_at


def test_sandbox_problem_fault(client, hangzhou, stocked):
    parcel = ship(stocked, hangzhou, carrier="sandbox", tracking_no="SB1234567802")
    sandbox_walk(client, "SB1234567802")
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.EXCEPTION
    assert LogisticsException.objects.get(shipment=parcel).kind == "problem"


def test_sandbox_refusal_of_a_cod_parcel_comes_back_and_cancels_the_order(client, hangzhou, stocked):
    parcel = ship(stocked, hangzhou, carrier="sandbox", tracking_no="SB1234567814", payment_method="cod")
    sku = parcel.lines.get().order_line.sku
    sandbox_walk(client, "SB1234567814")
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.RETURNED
    order = parcel.lines.get().order
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, "refused")
    assert StockLevel.objects.get(sku=sku, warehouse=hangzhou).on_hand == 10
    assert set(LogisticsException.objects.filter(shipment=parcel).values_list("kind", flat=True)) == {
        "refused",
        "returned",
    }


def test_sandbox_stall_and_a_fault_forced_by_setting(client, hangzhou, stocked, settings):
    stalled = ship(stocked, hangzhou, carrier="sandbox", tracking_no="SB1234567899")
    assert sandbox_walk(client, "SB1234567899") == [200]
    stalled.refresh_from_db()
    assert (stalled.status, stalled.tracking_state) == (ShipmentStatus.SHIPPED, "picked_up")

    settings.OMS_CARRIER_SANDBOX_FAULT = "problem"
    forced = ship(stocked, hangzhou, carrier="sandbox", tracking_no="SB1234567800", mobile="13900139000")
    sandbox_walk(client, "SB1234567800")
    forced.refresh_from_db()
    assert forced.status == ShipmentStatus.EXCEPTION


@pytest.mark.django_db(transaction=True)
def test_sandbox_carrier_moves_a_shipped_parcel_over_http(live_server, hangzhou, stocked, settings, eager_celery):
    """Ship → subscribe (after commit) → the sandbox carrier's tasks push over real HTTP to a
    live server, step after step (eagerly, so without the countdowns) → delivered."""
    settings.OMS_SITE_URL = live_server.url
    order = paid(order_for([(stocked({hangzhou: 10}), 1)]))  # allocated by its task, after commit
    parcel = Shipment.objects.get(lines__order=order)
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="sandbox", tracking_no="SB1234567890")
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.DELIVERED
    assert parcel.tracking_events.count() == 5
    assert subscription_of(parcel).status == "subscribed"
    assert list(TrackingPush.objects.values_list("status", flat=True)) == ["applied"] * 5


def test_sandbox_carrier_is_off_in_production(client, hangzhou, stocked, settings, poll_server: PollServer):
    parcel = ship(stocked, hangzhou, carrier="sandbox", tracking_no="SB1234567890")
    form = sandbox_push_build(tracking_no="SB1234567890", step=0, started_at=timezone.now())
    settings.OMS_CARRIER_SANDBOX_ENABLED = False
    settings.OMS_SITE_URL = poll_server.url.removesuffix("/poll")  # anything it sent would land here
    # its task does nothing
    sandbox_carrier_push("SB1234567890", 0, timezone.now().isoformat())
    assert poll_server.forms == []
    # a subscription for it is refused, and a new sandbox parcel cannot be shipped
    subscribe_tracking(parcel.pk)
    row = subscription_of(parcel)
    assert (row.status, row.last_error) == ("failed", "the sandbox carrier is off")
    sku = stocked({hangzhou: 5})
    (other,) = allocated(order_for([(sku, 1)], mobile="13900139000"))
    with pytest.raises(ValidationFailed) as refused:
        shipment_ship(shipment=other, actor=SYSTEM, carrier="sandbox", tracking_no="SB1234567891")
    assert "carrier" in refused.value.fields
    # and its pushes, however well signed, move nothing
    assert client.post(PUSH_URL, form).status_code == 200
    assert TrackingPush.objects.get().status == "unmatched"
    parcel.refresh_from_db()
    assert parcel.tracking_state == ""


def test_without_a_key_nothing_is_sent_and_the_row_waits(hangzhou, stocked, settings, poll_server: PollServer):
    settings.KUAIDI100_KEY = ""
    parcel = ship(stocked, hangzhou)
    assert subscribe_tracking(parcel.pk) == 0
    assert poll_server.forms == []
    row = subscription_of(parcel)
    assert (row.status, row.last_error) == ("pending", "KUAIDI100_KEY or KUAIDI100_SALT is not set")


def test_the_push_url_and_the_redelivery_schedule_exist():
    assert reverse("fulfillment:kuaidi100-push") == PUSH_URL == kuaidi100.PUSH_PATH
    schedule = PeriodicTask.objects.get(task="fulfillment.tasks.redeliver_tracking_subscriptions")
    assert schedule.enabled and schedule.interval.every == 600
