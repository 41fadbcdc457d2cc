"""A real Celery worker and beat against Redis: with a compressed deadline and schedule, an
order closes and its stock is released without anyone calling the task by hand.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from inventory.models import StockLevel
from orders.models import Order
from tests.orders.factories import OrderFactory
from tests.processes import celery_processes


def test_default_schedules_exist_and_are_editable_rows(db):
    tasks = dict(PeriodicTask.objects.values_list("task", "interval__every"))
    assert tasks["orders.tasks.close_expired_orders"] == 60
    assert tasks["reminders.tasks.send_due_reminders"] == 60
    assert tasks["payments.tasks.sync_stale_payments"] == 300
    assert tasks["orders.tasks.confirm_receipt_overdue"] == 3600
    assert tasks["payments.tasks.redeliver_refunds"] == 300


@pytest.mark.postgres
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_beat_and_worker_close_an_expired_order_on_their_own(tmp_path, storefront, tshirt):
    if not django_settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    PeriodicTask.objects.update(enabled=False)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name="test: close expired orders every second",
        defaults={"task": "orders.tasks.close_expired_orders", "interval": every_second, "enabled": True},
    )
    order = OrderFactory(storefront=storefront)
    deadline = timezone.now() + timedelta(seconds=4)  # a compressed payment deadline
    Order.objects.filter(pk=order.pk).update(payment_deadline=deadline)
    assert StockLevel.objects.get(sku=tshirt).reserved == 3

    with celery_processes(["worker", "beat"], log_dir=tmp_path):
        give_up = time.monotonic() + 90
        while time.monotonic() < give_up:
            order.refresh_from_db()
            if order.status != "pending_payment":
                break
            time.sleep(0.5)

    assert (order.status, order.cancel_reason) == ("cancelled", "timeout")
    assert order.cancelled_at >= deadline  # never before the deadline
    assert StockLevel.objects.get(sku=tshirt).reserved == 0
