"""At most once per (order, rule), even when two send_due_reminders runs overlap."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from reminders.models import Reminder
from reminders.services import reminders_send_due

from .conftest import at


@pytest.mark.django_db
def test_a_run_that_starts_while_another_is_sending_skips_the_claimed_rows(sms, only_rules, clock, make_order):
    """Run B starts while run A has a message on the wire (deterministic, any database)."""
    only_rules("order_confirmation")
    clock(at(3, 10, 10, 0))
    orders = [make_order() for _ in range(5)]
    inner_reports = []
    sms.before_send = lambda: inner_reports.append(reminders_send_due(batch_size=10))

    outer = reminders_send_due(batch_size=2)

    [inner] = inner_reports
    assert inner.sent == 3  # the 3 that run A had not claimed yet
    assert outer.sent == 2
    assert sorted(m.reference for m in sms.sent) == sorted(f"R{r.pk}" for r in Reminder.objects.all())
    assert Reminder.objects.filter(status="sent").count() == len(orders)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_in_parallel_threads_send_each_reminder_once(sms, settings, only_rules, make_order):
    settings.OMS_REMINDER_QUIET_HOURS = ""  # real time here: it may be night
    only_rules("order_confirmation")
    orders = [make_order() for _ in range(12)]
    sms.delay = 0.02  # each send takes a while, so the runs interleave
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def run() -> None:
        try:
            barrier.wait()
            reports.append(reminders_send_due(batch_size=3))
        except Exception as err:  # reported by the assertion below
            errors.append(err)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    references = [m.reference for m in sms.sent]
    assert len(references) == len(set(references)) == len(orders)
    assert sum(report.sent for report in reports) == len(orders)
    assert Reminder.objects.count() == len(orders)  # both runs scheduled; the unique constraint kept one row each
    assert set(Reminder.objects.values_list("status", "attempts")) == {("sent", 1)}
