"""A real Celery beat and worker against Redis: a paid order whose allocation message was never
sent is allocated by the beat-scheduled sweep, without anyone calling the task by hand."""

from __future__ import annotations

import time

import pytest
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
