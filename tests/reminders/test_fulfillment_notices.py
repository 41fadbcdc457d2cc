"""The fulfillment notices: 发货通知 with the carrier and tracking number (seed 004 下单篇 2), 签收通知,
and 商家取消通知. Queued inside the transaction that ships, delivers or cancels; sent by
send_due_reminders once per (order, rule), with quiet hours and opt-out respected."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction

from fulfillment.models import Shipment
from fulfillment.services import shipment_deliver, shipment_ship
from orders.events import Actor
from orders.models import OrderStatus
from reminders.models import Purpose, Reminder, ReminderRule
from reminders.selectors import order_messages
from reminders.services import customer_opt_out, reminders_notify_orders, reminders_schedule, reminders_send_due
from tests.fulfillment.conftest import allocated, order_for, paid
from workflows.cancellation import order_cancel
from workflows.expiry import order_close_expired

from .conftest import at

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")
NOTICES = ("shipped_notice", "delivered_notice", "merchant_cancelled_notice")


@pytest.fixture
def notices(only_rules):
    return only_rules(*NOTICES)


@pytest.fixture
def shirt(make_sku):
    return make_sku("SHIRT", "70.00", 20)


@pytest.fixture
def mug(make_sku):
    return make_sku("MUG", "30.00", 20)


def customer_service() -> Actor:
    user = User.objects.create_user(f"cs{User.objects.count()}", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="客服"))
    return Actor.staff(user)


def test_the_shipping_notice_names_the_carrier_and_tracking_number_and_is_sent_once(sms, notices, clock, shirt, mug):
    clock(at(3, 10, 10, 0))
    order = order_for([(shirt, 1), (mug, 1)])
    (parcel,) = allocated(order)
    assert not Reminder.objects.filter(order=order).exists()

    clock(at(3, 10, 15, 0))
    shipment_ship(
        shipment=parcel,
        actor=SYSTEM,
        carrier="shunfeng",
        tracking_no="SF1234567890",
        lines=[{"sku": "SHIRT", "quantity": 1}],
    )
    # the outbox row committed with the ship, before anything was sent
    [queued] = Reminder.objects.filter(order=order)
    assert (queued.purpose, queued.channel, queued.status) == ("shipped_notice", "sms", "scheduled")
    assert queued.variables == {"carrier_name": "顺丰速运", "tracking_no": "SF1234567890"}

    assert reminders_send_due().sent == 1
    [message] = sms.sent
    assert message.mobile == "13800138000"
    assert "已发货，快递：顺丰速运，单号 SF1234567890" in message.text
    assert order.order_no in message.text

    # the rest of the order ships in another parcel; the same parcel is confirmed again: no second notice
    rest = Shipment.objects.get(split_from=parcel)
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    shipment_ship(shipment=rest, actor=SYSTEM, carrier="yuantong", tracking_no="YT1234567890123")
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    clock(at(3, 10, 16, 0))
    reminders_send_due()
    assert len(sms.sent) == 1
    assert Reminder.objects.filter(order=order).count() == 1


def test_a_parcel_shipped_at_night_is_announced_in_the_morning_not_skipped(sms, notices, clock, shirt):
    clock(at(3, 10, 10, 0))
    order = order_for([(shirt, 1)])
    (parcel,) = allocated(order)
    clock(at(3, 12, 23, 30))  # long after the payment deadline, inside the quiet hours
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="jd", tracking_no="JD0123456789012")
    assert reminders_send_due().deferred == 1
    assert sms.sent == []
    [reminder] = Reminder.objects.filter(order=order)
    assert reminder.next_attempt_at == at(3, 13, 8, 0)

    clock(at(3, 13, 8, 0))
    assert reminders_send_due().sent == 1
    assert "京东物流" in sms.sent[0].text and "JD0123456789012" in sms.sent[0].text


def test_a_customer_who_opted_out_gets_no_shipping_notice(sms, notices, clock, shirt):
    clock(at(3, 10, 10, 0))
    order = order_for([(shirt, 1)])
    (parcel,) = allocated(order)
    customer_opt_out(mobile=order.customer_mobile, reason="回复TD")
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    report = reminders_send_due()
    assert (report.sent, report.skip_reasons["opted_out"]) == (0, 1)
    assert sms.sent == []


def test_the_delivery_notice_goes_out_when_the_whole_order_is_delivered(sms, notices, clock, shirt, mug):
    clock(at(3, 10, 10, 0))
    order = order_for([(shirt, 1), (mug, 1)])
    (parcel,) = allocated(order)
    first, _ = shipment_ship(
        shipment=parcel,
        actor=SYSTEM,
        carrier="shunfeng",
        tracking_no="SF1234567890",
        lines=[{"sku": "MUG", "quantity": 1}],
    )
    rest, _ = shipment_ship(
        shipment=Shipment.objects.get(split_from=first),
        actor=SYSTEM,
        carrier="shunfeng",
        tracking_no="SF1234567891",
    )
    reminders_send_due()  # the shipping notice
    clock(at(3, 11, 14, 0))
    shipment_deliver(shipment=first, actor=SYSTEM, at=at(3, 11, 13, 0))
    assert not Reminder.objects.filter(order=order, purpose=Purpose.DELIVERED_NOTICE).exists()  # one parcel of two
    shipment_deliver(shipment=rest, actor=SYSTEM, at=at(3, 11, 13, 30))
    assert reminders_send_due().sent == 1
    notice = order_messages(order=order).get(purpose=Purpose.DELIVERED_NOTICE)
    assert notice.channel == "in_app"
    assert f"订单 {order.order_no}" in notice.text and "已签收" in notice.text


def test_a_merchant_cancel_tells_the_customer_a_customer_cancel_does_not(sms, notices, clock, shirt):
    clock(at(3, 10, 10, 0))
    by_merchant = paid(order_for([(shirt, 1)]))
    by_customer = paid(order_for([(shirt, 1)], mobile="13900139000"))

    order_cancel(order=by_merchant, actor=customer_service(), reason="out_of_stock")
    order_cancel(order=by_customer, actor=Actor.storefront(by_customer.storefront), reason="changed_mind")

    assert reminders_send_due().sent == 1
    [message] = sms.sent
    assert message.mobile == "13800138000"
    assert f"订单 {by_merchant.order_no}" in message.text
    assert "已由商家取消，原因：缺货" in message.text
    assert f"您支付的 ¥{by_merchant.payable_total:.2f} 将原路退回" in message.text
    assert not Reminder.objects.filter(order=by_customer).exists()


def test_the_scheduler_never_creates_notices_on_its_own(sms, notices, clock, shirt):
    clock(at(3, 10, 10, 0))
    order = order_for([(shirt, 1)])
    allocated(order)
    assert reminders_schedule() == 0
    assert reminders_notify_orders(order_ids=[order.pk], purpose=Purpose.SHIPPED_NOTICE) == 1
    assert reminders_notify_orders(order_ids=[order.pk], purpose=Purpose.SHIPPED_NOTICE) == 1  # offered again…
    assert Reminder.objects.filter(order=order).count() == 1  # …but kept once
    with pytest.raises(ValueError):
        reminders_notify_orders(order_ids=[order.pk], purpose=Purpose.PAYMENT_REMINDER)


def test_a_notice_rule_needs_its_own_kind(rules):
    with pytest.raises(IntegrityError), transaction.atomic():
        ReminderRule.objects.create(
            name="x", purpose=Purpose.SHIPPED_NOTICE, kind=ReminderRule.Kind.AFTER_CREATED, template="x"
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        ReminderRule.objects.create(
            name="y", purpose=Purpose.PAYMENT_REMINDER, kind=ReminderRule.Kind.AFTER_SHIPPED, template="y"
        )


def test_the_notice_rolls_back_with_the_ship(sms, notices, clock, shirt):
    clock(at(3, 10, 10, 0))
    order = order_for([(shirt, 1)])
    (parcel,) = allocated(order)
    with pytest.raises(RuntimeError), transaction.atomic():
        shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
        raise RuntimeError("the request failed after shipping")
    assert not Reminder.objects.filter(order=order).exists()
    assert reminders_send_due().sent == 0


def test_the_timeout_close_sends_its_own_notice_not_the_merchant_one(sms, only_rules, clock, make_order):
    only_rules(*NOTICES, "closed_notice")
    clock(at(3, 10, 10, 0))
    order = make_order()
    clock(at(3, 11, 10, 1))
    order_close_expired()
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "timeout")
    assert list(Reminder.objects.filter(order=order).values_list("purpose", flat=True)) == ["closed_notice"]


def test_a_merged_parcel_tells_each_of_its_orders(sms, notices, clock, shirt, mug):
    clock(at(3, 10, 10, 0))
    first, second = order_for([(shirt, 1)]), order_for([(mug, 1)])  # same customer and address: 合单
    (parcel,) = allocated(first)
    assert allocated(second) == [parcel]
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="zhongtong", tracking_no="7123456789012")
    assert reminders_send_due().sent == 2
    texts = [message.text for message in sms.sent]
    assert [sum(order.order_no in text for text in texts) for order in (first, second)] == [1, 1]
    assert all("中通快递" in message.text and "7123456789012" in message.text for message in sms.sent)
