"""A real Celery beat and worker against Redis: a paid order is allocated by the job its payment
queued, and one whose allocation message was never sent by the beat-scheduled sweep, without
anyone calling the task by hand."""

from __future__ import annotations

import time

import pytest
from celery.canvas import Signature
from django.conf import settings as django_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from fulfillment.models import ShipmentLine
from tests.processes import celery_processes

from .conftest import order_for, paid


@pytest.mark.postgres
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_beat_and_worker_allocate_an_order_whose_message_was_lost(tmp_path, settings, hangzhou, stocked):
    if not django_settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    settings.OMS_RELEASE_DELAY_MINUTES = 5  # here: no allocate_order message is queued on payment
    shirt = stocked({hangzhou: 3})
    order = paid(order_for([(shirt, 2)]))
    PeriodicTask.objects.update(enabled=False)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name="test: allocation sweep every second",
        defaults={"task": "fulfillment.tasks.allocate_pending_orders", "interval": every_second, "enabled": True},
    )

    # the worker's own settings have no release delay: the sweep allocates at its next run
    with celery_processes(["worker", "beat"], log_dir=tmp_path, OMS_RELEASE_DELAY_MINUTES="0"):
        give_up = time.monotonic() + 90
        while time.monotonic() < give_up and not ShipmentLine.objects.filter(order=order).exists():
            time.sleep(0.5)

    [line] = ShipmentLine.objects.filter(order=order)
    assert (line.quantity, line.shipment.warehouse, line.shipment.status) == (2, hangzhou, "pending")


@pytest.mark.postgres
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_allocation_job_written_the_short_way(
    tmp_path, settings, hangzhou, stocked, monkeypatch
):
    """Paying queues allocate_order after the commit; oms.jobs writes it to Redis with one LPUSH
    (not through apply_async, which is made to fail here) and a real worker allocates the order."""
    if not django_settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    settings.OMS_RELEASE_DELAY_MINUTES = 0
    shirt = stocked({hangzhou: 3})
    order = order_for([(shirt, 2)])

    def refuse(*args, **kwargs):
        raise AssertionError("sent through apply_async")

    monkeypatch.setattr(Signature, "apply_async", refuse)
    with celery_processes(["worker"], log_dir=tmp_path):
        paid(order)
        give_up = time.monotonic() + 90
        while time.monotonic() < give_up and not ShipmentLine.objects.filter(order=order).exists():
            time.sleep(0.5)

    [line] = ShipmentLine.objects.filter(order=order)
    assert (line.quantity, line.shipment.warehouse) == (2, hangzhou)
