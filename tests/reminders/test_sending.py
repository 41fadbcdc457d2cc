"""The rules engine end to end: confirmation, 催付 timing, quiet hours, skip-on-paid, the nudge,
closed notices, retries. Orders come through the storefront API; time is moved with time-machine."""

from __future__ import annotations

import pytest
from django.core import mail

from orders.models import OrderEvent
from orders.services import Actor, order_pay
from payments.models import Payment
from reminders.channels import ChannelError
from reminders.models import Reminder, ReminderRule
from reminders.services import reminders_notify_closed, reminders_schedule, reminders_send_due
from workflows.cancellation import order_cancel

from .conftest import at

pytestmark = pytest.mark.django_db


def reminders_of(order, code: str) -> list[Reminder]:
    return list(Reminder.objects.filter(order=order, rule__code=code))


def test_confirmation_is_sent_once_right_after_creation(sms, only_rules, clock, make_order):
    only_rules("order_confirmation")
    clock(at(3, 10, 10, 0))
    order = make_order()

    report = reminders_send_due()
    assert (report.scheduled, report.sent) == (1, 1)
    [message] = sms.sent
    assert message.mobile == "13800138000"
    assert order.order_no in message.text
    assert "210.00" in message.text and "支付宝" in message.text
    assert "3月11日 10:00" in message.text  # the payment deadline
    assert "https://shop.example.com/payments/pay/" + order.order_no in message.text

    clock(at(3, 10, 10, 5))
    assert reminders_send_due().sent == 0  # at most once per (order, rule)
    assert len(sms.sent) == 1
    [reminder] = reminders_of(order, "order_confirmation")
    assert (reminder.status, reminder.attempts, reminder.provider_message_id) == ("sent", 1, "fake-1")
    event = order.events.get(type=OrderEvent.Type.REMINDER_SENT)
    assert (event.actor_kind, event.reason, event.data["channel"]) == ("system", "下单确认", "sms")


def test_confirmation_is_sent_even_if_the_order_was_paid_already(sms, only_rules, clock, make_order):
    only_rules("order_confirmation")
    clock(at(3, 10, 10, 0))
    order = make_order()
    order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("test"))
    assert reminders_send_due().sent == 1
    assert "已收到您的付款" in sms.sent[0].text and "付款链接" not in sms.sent[0].text


def test_reminder_30_minutes_after_creation_is_polite_and_complete(sms, only_rules, clock, make_order):
    only_rules("remind_after_created")
    clock(at(3, 10, 10, 0))
    order = make_order()

    clock(at(3, 10, 10, 29))
    assert reminders_send_due().sent == 0
    clock(at(3, 10, 10, 30))
    assert reminders_send_due().sent == 1
    text = sms.sent[0].text
    assert order.order_no in text
    assert "商品 TSHIRT-L-BLK×3" in text and "¥210.00" in text
    assert "23小时30分钟" in text  # time left
    assert "/payments/pay/" + order.order_no in text
    assert "请忽略" in text  # polite: it is fine to ignore it
    assert sms.sent[0].params["order_no"] == order.order_no


def test_reminder_2_hours_before_the_deadline(sms, only_rules, clock, make_order):
    only_rules("remind_before_deadline")
    clock(at(3, 10, 10, 0))
    order = make_order()
    clock(at(3, 11, 7, 59))
    assert reminders_send_due().sent == 0
    clock(at(3, 11, 8, 0))
    assert reminders_send_due().sent == 1
    assert "2小时" in sms.sent[0].text
    assert reminders_of(order, "remind_before_deadline")[0].scheduled_at == at(3, 11, 8, 0)


def test_order_paid_between_scheduling_and_sending_is_skipped_without_a_message(sms, only_rules, clock, make_order):
    only_rules("remind_after_created")
    clock(at(3, 10, 10, 0))
    order = make_order()
    clock(at(3, 10, 10, 31))
    assert reminders_schedule() == 1

    order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("test"))
    report = reminders_send_due()

    assert (report.sent, report.skipped) == (0, 1)
    assert sms.sent == []
    [reminder] = reminders_of(order, "remind_after_created")
    assert (reminder.status, reminder.skip_reason) == ("skipped", "order_paid")
    assert not order.events.filter(type=OrderEvent.Type.REMINDER_SENT).exists()


def test_cancelled_order_gets_a_skipped_reminder(sms, only_rules, clock, make_order):
    only_rules("remind_after_created")
    clock(at(3, 10, 10, 0))
    order = make_order()
    clock(at(3, 10, 10, 31))
    reminders_schedule()
    order_cancel(order=order, actor=Actor.system("test"), reason="changed_mind")
    reminders_send_due()
    assert sms.sent == []
    assert reminders_of(order, "remind_after_created")[0].skip_reason == "order_cancelled"


def test_paid_or_cash_on_delivery_orders_are_never_scheduled_for_催付(sms, only_rules, clock, make_order):
    only_rules("remind_after_created")
    clock(at(3, 10, 10, 0))
    paid = make_order()
    order_pay(order=paid, amount=paid.payable_total, actor=Actor.gateway("test"))
    make_order(payment_method="cod")
    clock(at(3, 10, 10, 31))
    assert reminders_send_due().scheduled == 0
    assert not Reminder.objects.exists()


def test_due_in_quiet_hours_moves_to_08_00_next_day(sms, only_rules, clock, make_order):
    only_rules("remind_after_created")
    clock(at(3, 10, 22, 30))
    order = make_order()

    clock(at(3, 10, 23, 0))
    report = reminders_send_due()
    assert (report.sent, report.deferred) == (0, 1)
    [reminder] = reminders_of(order, "remind_after_created")
    assert reminder.status == "scheduled"
    assert reminder.scheduled_at == at(3, 10, 23, 0)
    assert reminder.next_attempt_at == at(3, 11, 8, 0)

    clock(at(3, 11, 7, 59))
    assert reminders_send_due().sent == 0
    clock(at(3, 11, 8, 0))
    assert reminders_send_due().sent == 1
    assert len(sms.sent) == 1


def test_quiet_hours_skip_when_the_deadline_comes_first(sms, only_rules, clock, make_order):
    only_rules("remind_before_deadline")
    clock(at(3, 10, 19, 0))
    order = make_order(order_type="promo")  # 6 hours to pay: deadline 01:00, reminder due 23:00
    assert order.payment_deadline == at(3, 11, 1, 0)

    clock(at(3, 10, 23, 0))
    reminders_send_due()
    [reminder] = reminders_of(order, "remind_before_deadline")
    assert (reminder.status, reminder.skip_reason) == ("skipped", "quiet_hours")
    assert sms.sent == []


def test_quiet_hours_apply_to_sms_only(sms, only_rules, clock, make_order, settings):
    rule = only_rules("remind_after_created")["remind_after_created"]
    ReminderRule.objects.filter(pk=rule.pk).update(channel="email")
    clock(at(3, 10, 22, 30))
    make_order()
    clock(at(3, 10, 23, 0))
    assert reminders_send_due().sent == 1
    assert len(mail.outbox) == 1

    settings.OMS_REMINDER_QUIET_HOURS = ""  # and they can be turned off
    ReminderRule.objects.filter(pk=rule.pk).update(channel="sms")
    make_order()
    clock(at(3, 10, 23, 30))
    assert reminders_send_due().sent == 1


def test_nudge_after_a_payment_attempt_that_did_not_complete(sms, only_rules, clock, make_order):
    only_rules("payment_trouble")
    clock(at(3, 10, 10, 0))
    order = make_order()
    clock(at(3, 10, 10, 5))
    Payment.objects.create(
        order=order, channel="alipay", out_trade_no=f"{order.order_no}P01", amount=order.payable_total
    )

    clock(at(3, 10, 10, 7))
    assert reminders_send_due().sent == 0
    clock(at(3, 10, 10, 8))
    assert reminders_send_due().sent == 1
    assert "付款似乎没有完成" in sms.sent[0].text
    [nudge] = reminders_of(order, "payment_trouble")
    assert nudge.scheduled_at == at(3, 10, 10, 8)
    assert nudge.purpose == "payment_reminder"  # it counts against the per-order cap


def test_nudge_is_skipped_when_the_order_got_paid(sms, only_rules, clock, make_order):
    only_rules("payment_trouble")
    clock(at(3, 10, 10, 0))
    order = make_order()
    Payment.objects.create(
        order=order, channel="alipay", out_trade_no=f"{order.order_no}P01", amount=order.payable_total
    )
    clock(at(3, 10, 10, 3))
    reminders_schedule()
    order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("test"))
    reminders_send_due()
    assert sms.sent == []
    assert reminders_of(order, "payment_trouble")[0].skip_reason == "order_paid"


def test_no_payment_attempt_no_nudge(sms, only_rules, clock, make_order):
    only_rules("payment_trouble")
    clock(at(3, 10, 10, 0))
    make_order()
    clock(at(3, 10, 12, 0))
    assert reminders_send_due().scheduled == 0


def test_closed_notice_is_queued_set_based_and_sent_by_the_job(
    sms, only_rules, clock, make_order, django_assert_num_queries
):
    only_rules("closed_notice")
    clock(at(3, 10, 10, 0))
    orders = [make_order() for _ in range(3)]
    for order in orders:
        order_cancel(order=order, actor=Actor.system("close_expired_orders"), reason="timeout")
    ids = [order.pk for order in orders]

    with django_assert_num_queries(2):  # the rules, one INSERT … ON CONFLICT DO NOTHING
        assert reminders_notify_closed(order_ids=ids) == 3
    reminders_notify_closed(order_ids=ids)  # again: nothing new
    assert Reminder.objects.filter(rule__code="closed_notice").count() == 3

    report = reminders_send_due()
    assert report.sent == 3
    assert sms.sent == []  # the closed notice is an in-app message by default
    reminder = reminders_of(orders[0], "closed_notice")[0]
    assert (reminder.channel, reminder.status) == ("in_app", "sent")
    assert "已自动关闭" in reminder.text and orders[0].order_no in reminder.text


def test_closed_notice_skipped_when_the_order_is_no_longer_closed(sms, only_rules, clock, make_order):
    only_rules("closed_notice")
    clock(at(3, 10, 10, 0))
    order = make_order()  # never closed: e.g. a late payment revived it before the job ran
    reminders_notify_closed(order_ids=[order.pk])
    reminders_send_due()
    assert reminders_of(order, "closed_notice")[0].skip_reason == "order_reopened"


def test_failed_send_is_retried_with_backoff_then_marked_failed(sms, only_rules, clock, make_order, admin_client):
    only_rules("order_confirmation")
    sms.failures = [ChannelError("网关超时", code="Throttling")] * 3
    clock(at(3, 10, 10, 0))
    order = make_order()

    assert reminders_send_due().retrying == 1
    [reminder] = reminders_of(order, "order_confirmation")
    assert (reminder.status, reminder.attempts) == ("scheduled", 1)
    assert reminder.next_attempt_at == at(3, 10, 10, 1)  # 60 s back-off
    assert reminder.last_error == "网关超时"

    clock(at(3, 10, 10, 0, 59))
    assert reminders_send_due().retrying == 0  # not yet
    clock(at(3, 10, 10, 1))
    assert reminders_send_due().retrying == 1
    reminder.refresh_from_db()
    assert (reminder.attempts, reminder.next_attempt_at) == (2, at(3, 10, 10, 3))  # 120 s

    clock(at(3, 10, 10, 3))
    assert reminders_send_due().failed == 1
    reminder.refresh_from_db()
    assert (reminder.status, reminder.attempts) == ("failed", 3)
    assert sms.sent == []

    # customer service sees it: the failed filter of the message log
    page = admin_client.get("/admin/reminders/reminder/?status__exact=failed").content.decode()
    assert order.order_no in page and "网关超时" in page


def test_a_failure_that_cannot_be_retried_fails_at_once(sms, only_rules, clock, make_order):
    only_rules("order_confirmation")
    sms.failures = [ChannelError("号码无效", code="isv.MOBILE_NUMBER_ILLEGAL", retryable=False)]
    clock(at(3, 10, 10, 0))
    order = make_order()
    assert reminders_send_due().failed == 1
    assert reminders_of(order, "order_confirmation")[0].status == "failed"


def test_requeued_failed_reminder_is_sent(sms, only_rules, clock, make_order, admin_client):
    only_rules("order_confirmation")
    sms.failures = [ChannelError("号码无效", retryable=False)]
    clock(at(3, 10, 10, 0))
    order = make_order()
    reminders_send_due()
    [reminder] = reminders_of(order, "order_confirmation")
    response = admin_client.post(
        "/admin/reminders/reminder/", {"action": "requeue_failed", "_selected_action": [reminder.pk]}
    )
    assert response.status_code == 302
    assert reminders_send_due().sent == 1


def test_a_claim_whose_worker_died_is_marked_failed_not_resent(sms, only_rules, clock, make_order):
    only_rules("order_confirmation")
    clock(at(3, 10, 10, 0))
    order = make_order()
    reminders_schedule()
    Reminder.objects.filter(order=order).update(status="sending", claimed_at=at(3, 10, 10, 0), attempts=1)
    clock(at(3, 10, 10, 11))
    assert reminders_send_due().abandoned == 1
    reminder = reminders_of(order, "order_confirmation")[0]
    assert reminder.status == "failed" and "结果未知" in reminder.last_error
    assert sms.sent == []


def test_email_channel_uses_django_mail(sms, only_rules, clock, make_order):
    rule = only_rules("order_confirmation")["order_confirmation"]
    ReminderRule.objects.filter(pk=rule.pk).update(channel="email")
    clock(at(3, 10, 10, 0))
    order = make_order()
    no_email = make_order(customer={"name": "李先生", "mobile": "13900139000"})

    reminders_send_due()
    [message] = mail.outbox
    assert message.to == ["zhang@example.com"]
    assert message.subject == f"订单 {order.order_no} 已提交"
    assert "¥210.00" in message.body
    reminder = reminders_of(order, "order_confirmation")[0]
    assert reminder.provider_message_id == message.extra_headers["Message-ID"]
    assert reminders_of(no_email, "order_confirmation")[0].skip_reason == "no_contact"


def test_rule_limited_to_order_types(sms, only_rules, clock, make_order):
    rule = only_rules("order_confirmation")["order_confirmation"]
    ReminderRule.objects.filter(pk=rule.pk).update(order_types=["promo"])
    clock(at(3, 10, 10, 0))
    make_order()
    promo = make_order(order_type="promo")
    assert reminders_send_due().sent == 1
    assert promo.order_no in sms.sent[0].text


def test_the_job_does_not_catch_up_on_old_due_times(sms, only_rules, clock, make_order):
    only_rules("order_confirmation")
    clock(at(3, 10, 10, 0))
    make_order()
    clock(at(3, 10, 17, 0))  # the job was down for 7 hours (> OMS_REMINDER_MAX_LATENESS_MINUTES)
    assert reminders_send_due().scheduled == 0


def test_task_runs_the_service(sms, only_rules, clock, make_order):
    from reminders.tasks import send_due_reminders

    only_rules("order_confirmation")
    clock(at(3, 10, 10, 0))
    make_order()
    result = send_due_reminders()
    assert (result["scheduled"], result["sent"]) == (1, 1)
    assert Reminder.objects.get().sent_at == at(3, 10, 10, 0)


def test_deactivating_a_rule_stops_its_pending_messages(sms, only_rules, clock, make_order):
    rule = only_rules("remind_after_created")["remind_after_created"]
    clock(at(3, 10, 22, 30))
    order = make_order()
    clock(at(3, 10, 23, 0))
    reminders_send_due()  # deferred to 08:00 by the quiet hours
    ReminderRule.objects.filter(pk=rule.pk).update(active=False)
    clock(at(3, 11, 8, 0))
    reminders_send_due()
    assert reminders_of(order, "remind_after_created")[0].skip_reason == "rule_inactive"
    assert sms.sent == []
