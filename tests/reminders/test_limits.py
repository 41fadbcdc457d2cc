"""Limits that keep 催付 polite: per-order cap, per-customer daily cap, opt-out, spacing."""

from __future__ import annotations

import pytest

from orders.services import Actor
from payments.models import Payment
from reminders.models import Reminder
from reminders.services import customer_opt_out, manual_reminder_record, reminders_send_due

from .conftest import at

pytestmark = pytest.mark.django_db


def status_of(order, code: str) -> tuple[str, str]:
    reminder = Reminder.objects.get(order=order, rule__code=code)
    return reminder.status, reminder.skip_reason


def test_per_order_cap_counts_every_kind_of_催付(sms, rules, clock, make_order):
    """Nudge + 30-minute reminder reach the default cap of 2: the 2-hour reminder is skipped.
    The confirmation is not a 催付 and does not count."""
    clock(at(3, 10, 10, 0))
    order = make_order()
    Payment.objects.create(
        order=order, channel="alipay", out_trade_no=f"{order.order_no}P01", amount=order.payable_total
    )
    clock(at(3, 10, 10, 3))
    reminders_send_due()  # confirmation + nudge
    clock(at(3, 10, 10, 30))
    report = reminders_send_due()  # the 30-minute reminder waits: the nudge went out 27 minutes ago
    assert report.deferred == 1
    reminder = Reminder.objects.get(order=order, rule__code="remind_after_created")
    assert reminder.next_attempt_at == at(3, 10, 11, 3)  # OMS_REMINDER_MIN_GAP_MINUTES after the nudge
    clock(at(3, 10, 11, 3))
    assert reminders_send_due().sent == 1

    clock(at(3, 11, 8, 0))
    reminders_send_due()
    assert status_of(order, "remind_before_deadline") == ("skipped", "order_cap")
    assert [m.reference for m in sms.sent] == [
        f"R{Reminder.objects.get(order=order, rule__code=code).pk}"
        for code in ("order_confirmation", "payment_trouble", "remind_after_created")
    ]


def test_manual_催付_counts_against_the_per_order_cap(sms, only_rules, clock, make_order, settings, admin_user):
    only_rules("remind_after_created")
    settings.OMS_REMINDER_ORDER_CAP = 1
    clock(at(3, 10, 10, 0))
    order = make_order()
    manual_reminder_record(order=order, channel="phone", outcome="considering", actor=Actor.staff(admin_user))
    clock(at(3, 10, 10, 30))
    reminders_send_due()
    assert status_of(order, "remind_after_created") == ("skipped", "order_cap")
    assert sms.sent == []


def test_per_customer_daily_cap(sms, only_rules, clock, make_order, settings):
    only_rules("remind_after_created", "remind_before_deadline")
    settings.OMS_REMINDER_DAILY_CAP = 1
    clock(at(3, 10, 10, 0))
    first, second = make_order(), make_order()  # same customer (mobile)
    other = make_order(customer={"name": "李先生", "mobile": "13900139000"})

    clock(at(3, 10, 10, 30))
    report = reminders_send_due()
    assert (report.sent, report.skipped) == (2, 1)
    assert status_of(first, "remind_after_created") == ("sent", "")
    assert status_of(second, "remind_after_created") == ("skipped", "daily_cap")
    assert status_of(other, "remind_after_created") == ("sent", "")

    clock(at(3, 11, 8, 0))  # a new day: the count starts again
    reminders_send_due()
    assert status_of(first, "remind_before_deadline") == ("sent", "")
    assert status_of(second, "remind_before_deadline") == ("skipped", "daily_cap")


def test_opted_out_customer_gets_no_催付_but_still_gets_the_confirmation(sms, only_rules, clock, make_order):
    only_rules("order_confirmation", "remind_after_created")
    customer_opt_out(mobile="13800138000", reason="回复退订")
    clock(at(3, 10, 10, 0))
    order = make_order()
    reminders_send_due()
    clock(at(3, 10, 10, 30))
    reminders_send_due()
    assert status_of(order, "order_confirmation") == ("sent", "")
    assert status_of(order, "remind_after_created") == ("skipped", "opted_out")
    assert len(sms.sent) == 1


def test_opt_out_is_editable_in_the_admin(admin_client, sms, only_rules, clock, make_order):
    only_rules("remind_after_created")
    response = admin_client.post(
        "/admin/reminders/customercontactpreference/add/",
        {"mobile": "13800138000", "opted_out": "on", "reason": "电话里要求不要再发短信"},
    )
    assert response.status_code == 302
    clock(at(3, 10, 10, 0))
    order = make_order()
    clock(at(3, 10, 10, 30))
    reminders_send_due()
    assert status_of(order, "remind_after_created") == ("skipped", "opted_out")


def test_spacing_that_would_pass_the_deadline_skips(sms, only_rules, clock, make_order):
    """Two 催付 due in the same run: the second would have to wait an hour, which is past the deadline."""
    only_rules("remind_after_created", "remind_before_deadline")
    clock(at(3, 10, 14, 0))
    order = make_order(order_type="promo")  # deadline 20:00; due at 14:30 and at 18:00
    clock(at(3, 10, 19, 30))  # the job was down until now
    report = reminders_send_due()
    assert (report.sent, report.skipped) == (1, 1)
    assert status_of(order, "remind_after_created") == ("sent", "")
    assert status_of(order, "remind_before_deadline") == ("skipped", "too_soon")
