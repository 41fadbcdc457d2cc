"""send_due_reminders is set-based: scheduling costs the same for 2 orders as for 20."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reminders.models import Reminder, ReminderRule
from reminders.services import reminders_schedule, reminders_send_due

from .conftest import at

pytestmark = pytest.mark.django_db
ONE_SHIRT = [{"sku": "TSHIRT-L-BLK", "quantity": 1}]  # stock for 100 orders


def schedule_queries(clock, make_order, n: int) -> tuple[int, int]:
    Reminder.objects.all().delete()
    clock(at(3, 10, 10, 0))
    for _ in range(n):
        make_order(lines=ONE_SHIRT)
    clock(at(3, 10, 10, 31))
    with CaptureQueriesContext(connection) as queries:
        offered = reminders_schedule()
    return len(queries), offered


def test_scheduling_queries_do_not_grow_with_the_number_of_orders(sms, rules, clock, make_order):
    small, offered_small = schedule_queries(clock, make_order, 2)
    large, offered_large = schedule_queries(clock, make_order, 18)
    assert (offered_small, offered_large) == (2 * 2, 20 * 2)  # confirmation + 30-minute reminder per order
    assert small == large
    scanned_rules = ReminderRule.objects.filter(active=True).exclude(kind="after_closed").count()
    assert large <= 1 + 2 * scanned_rules  # the rules, then one SELECT and one INSERT per rule


def send_queries(clock, make_order, n: int) -> int:
    clock(at(3, 10, 10, 0))
    for _ in range(n):
        make_order(lines=ONE_SHIRT)
    reminders_schedule()
    with CaptureQueriesContext(connection) as queries:
        assert reminders_send_due(batch_size=50).sent == n
    return len(queries)


def test_sending_a_batch_has_a_fixed_cost_plus_a_few_writes_per_message(
    sms, only_rules, clock, make_order, django_assert_max_num_queries
):
    rule = only_rules("order_confirmation")["order_confirmation"]
    ReminderRule.objects.filter(pk=rule.pk).update(channel="in_app")
    five = send_queries(clock, make_order, 5)
    twenty = send_queries(clock, make_order, 20)
    # Claiming is set-based; each message then costs its row's UPDATE and the timeline event
    # (plus the savepoint pair the test's outer transaction adds).
    assert twenty - five <= 4 * 15

    clock(at(3, 10, 11, 0))
    for _ in range(10):
        make_order(lines=ONE_SHIRT)
    with django_assert_max_num_queries(FIXED_COST + 4 * 10):
        assert reminders_send_due(batch_size=50).sent == 10


FIXED_COST = 20  # claim: reminders, mobiles, (advisory locks,) orders, rules, lines, 5 limit counts, bulk UPDATE
