"""Payment start, gateway check (补单) and refund execution against the sandbox gateway
over real HTTP (pytest-django's live server), with the sandbox's own generated keys.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from orders.events import Actor
from orders.models import Order
from payments import services
from payments.gateways import get_gateway
from payments.models import Payment, ReconciliationCase, Refund
from payments.sandbox.models import SandboxNotify, SandboxRefund
from payments.sandbox.services import SandboxError, delivery_headers, sandbox_pay
from tests.conftest import client_for
from workflows.expiry import order_close_expired

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(live_sandbox, queued_deliveries, storefront, tshirt):
    return client_for(storefront)


def new_order(shop, order_body, **overrides) -> Order:
    body = {**order_body, **overrides}
    response = shop.post("/api/v1/orders/", body, format="json")
    assert response.status_code == 201, response.content
    return Order.objects.get(order_no=response.json()["order_no"])


def start(shop, order: Order, channel: str):
    return shop.post(f"/api/v1/orders/{order.order_no}/payments/", {"channel": channel}, format="json")


def pay_at_sandbox(shop, order: Order, channel: str = "alipay") -> Payment:
    """The customer opens the pay link (the sandbox checks our signature) and pays."""
    answer = start(shop, order, channel).json()
    if channel == "alipay":
        assert requests.get(answer["pay_url"], timeout=10).status_code == 200
    sandbox_pay(channel=channel, out_trade_no=answer["out_trade_no"])
    return Payment.objects.get(out_trade_no=answer["out_trade_no"])


def deliver_notifies_in_process(channel: str) -> None:
    for notify in SandboxNotify.objects.filter(channel=channel).order_by("pk"):
        services.payment_receive_notification(
            channel=channel, body=notify.body.encode(), headers=delivery_headers(notify, timezone.now())
        )


def test_start_payment_answers_pay_url_and_reuses_the_open_attempt(shop, order_body):
    order = new_order(shop, order_body)
    first, again = start(shop, order, "alipay"), start(shop, order, "alipay")
    assert first.status_code == 201
    body = first.json()
    assert body["amount"] == "210.00" and body["channel"] == "alipay"
    assert body["pay_url"].startswith(get_gateway("alipay").config.gateway_url)
    assert again.json()["out_trade_no"] == body["out_trade_no"]
    assert Payment.objects.count() == 1


def test_start_wechat_payment_answers_code_url(shop, order_body):
    order = new_order(shop, order_body)
    response = start(shop, order, "wechatpay")
    assert response.status_code == 201, response.content
    assert response.json()["code_url"]
    assert "pay_url" not in response.json()


def test_start_payment_refused_when_not_awaiting_payment_or_past_deadline(shop, order_body):
    order = new_order(shop, order_body)
    Order.objects.filter(pk=order.pk).update(payment_deadline=timezone.now() - timedelta(seconds=1))
    late = start(shop, order, "alipay")
    assert (late.status_code, late.json()["code"]) == (409, "payment_deadline_passed")
    other = new_order(shop, order_body, external_id="X-2")
    shop.post(f"/api/v1/orders/{other.order_no}/cancel/", {"reason": "changed_mind"}, format="json")
    cancelled = start(shop, other, "alipay")
    assert (cancelled.status_code, cancelled.json()["code"]) == (409, "invalid_transition")
    bad = start(shop, new_order(shop, order_body, external_id="X-3"), "cod")
    assert (bad.status_code, list(bad.json()["fields"])) == (400, ["channel"])
    assert Payment.objects.count() == 0


def test_gateway_check_applies_a_payment_whose_notify_never_came(shop, order_body):
    order = new_order(shop, order_body)
    payment = pay_at_sandbox(shop, order)  # paid at the gateway; the notify is never delivered
    report = services.payment_sync(order=order)
    order.refresh_from_db()
    payment.refresh_from_db()
    assert report.applied == 1
    assert (order.status, payment.status) == ("awaiting_shipment", "succeeded")


def test_gateway_check_closes_an_unpaid_attempt_at_the_gateway(shop, order_body):
    order = new_order(shop, order_body)
    answer = start(shop, order, "alipay").json()
    requests.get(answer["pay_url"], timeout=10)
    report = services.payment_sync(order=order)
    assert report.closed == 1
    assert Payment.objects.get().status == "closed"
    assert get_gateway("alipay").query(out_trade_no=answer["out_trade_no"]).closed
    with pytest.raises(SandboxError):
        sandbox_pay(channel="alipay", out_trade_no=answer["out_trade_no"])  # cannot be paid any more


@pytest.mark.parametrize("channel", ["alipay", "wechatpay"])
def test_refund_needs_approval_permission_then_goes_back_through_the_original_route(
    shop, order_body, refunds_queued, channel
):
    order = new_order(shop, order_body)
    payment = pay_at_sandbox(shop, order, channel)
    deliver_notifies_in_process(channel)
    refund = services.refund_request(
        order=order, amount=Decimal("50.00"), reason="部分退货", actor=Actor.system("test")
    )
    clerk = User.objects.create_user("kefu")
    with pytest.raises(PermissionDenied):
        services.refund_approve(refund=refund, user=clerk)
    finance = User.objects.create_user("caiwu")
    finance.user_permissions.add(Permission.objects.get(codename="approve_refund"))
    finance = User.objects.get(pk=finance.pk)
    services.refund_approve(refund=refund, user=finance)
    assert refunds_queued == [refund.pk]  # queued after commit, not run inline

    services.refund_execute(refund_id=refund.pk)
    if channel == "wechatpay":  # WeChat answers PROCESSING; its refund notice finishes it
        deliver_notifies_in_process(channel)
    refund.refresh_from_db()
    order.refresh_from_db()
    assert (refund.status, refund.approved_by_id) == ("succeeded", finance.pk)
    assert order.refunded_total == Decimal("50.00")
    assert SandboxRefund.objects.get().amount == Decimal("50.00")
    assert payment.refunds.count() == 1


def test_refund_retry_reuses_out_refund_no_and_never_refunds_twice(shop, order_body, refunds_queued):
    order = new_order(shop, order_body)
    payment = pay_at_sandbox(shop, order)
    deliver_notifies_in_process("alipay")
    refund = services.refund_request(
        order=order,
        amount=order.payable_total,
        reason="取消",
        actor=Actor.system("test"),
        auto_approve=True,
    )
    # A first attempt reached the gateway but its answer was lost (timeout): the gateway has it.
    get_gateway("alipay").refund(
        out_trade_no=payment.out_trade_no,
        out_refund_no=refund.out_refund_no,
        amount=refund.amount,
        total=payment.amount,
        reason="取消",
    )
    services.refund_execute(refund_id=refund.pk)  # the retry, same out_refund_no
    services.refund_execute(refund_id=refund.pk)  # and a duplicate task run
    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.status == "succeeded"
    assert order.refunded_total == order.payable_total
    assert SandboxRefund.objects.count() == 1
    assert Refund.objects.count() == 1


def test_cancelling_a_paid_order_refunds_through_the_original_route(shop, order_body, refunds_queued):
    order = new_order(shop, order_body)
    payment = pay_at_sandbox(shop, order)
    deliver_notifies_in_process("alipay")
    response = shop.post(f"/api/v1/orders/{order.order_no}/cancel/", {"reason": "changed_mind"}, format="json")
    assert response.json()["status"] == "cancelled"
    refund = Refund.objects.get()
    assert (refund.payment_id, refund.amount, refund.status) == (payment.pk, order.payable_total, "requested")
    assert order.events.filter(type="refund_requested").count() == 1  # one event per refund, not two


def test_refund_refused_by_the_gateway_fails_and_opens_a_case(shop, order_body, refunds_queued):
    order = new_order(shop, order_body)
    answer = start(shop, order, "alipay").json()
    requests.get(answer["pay_url"], timeout=10)  # the trade exists at the gateway but was never paid
    payment = Payment.objects.get()
    payment.succeed(trade_no="LOCAL-ONLY", at=timezone.now())  # a ledger that disagrees with the gateway
    payment.save()
    Order.objects.filter(pk=order.pk).update(paid_total=order.payable_total)
    refund = services.refund_request(
        order=order, amount=Decimal("10.00"), reason="测试", actor=Actor.system("test"), auto_approve=True
    )
    services.refund_execute(refund_id=refund.pk)
    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.status == "failed" and refund.last_error
    assert order.refunded_total == Decimal("0.00")
    case = ReconciliationCase.objects.get()
    assert (case.type, case.refund_id) == ("refund_failed", refund.pk)


def test_timeout_sweep_applies_a_payment_found_at_the_gateway_instead_of_closing(shop, order_body):

    paid = new_order(shop, order_body)
    pay_at_sandbox(shop, paid)  # paid at the gateway, notify lost
    unpaid = new_order(shop, order_body, external_id="X-2")
    answer = start(shop, unpaid, "alipay").json()
    requests.get(answer["pay_url"], timeout=10)  # opened the cashier, never paid
    Order.objects.update(payment_deadline=timezone.now() - timedelta(seconds=1))

    report = order_close_expired()
    paid.refresh_from_db()
    unpaid.refresh_from_db()
    assert report.checked_with_gateway == 2
    assert (paid.status, paid.paid_total) == ("awaiting_shipment", paid.payable_total)
    assert (unpaid.status, unpaid.cancel_reason) == ("cancelled", "timeout")
    assert get_gateway("alipay").query(out_trade_no=answer["out_trade_no"]).closed  # closed at the gateway too


def test_the_pay_link_in_reminders_leads_to_the_gateway(shop, order_body, client):
    from django.conf import settings

    from reminders.conf import pay_link

    order = new_order(shop, order_body)
    link = pay_link(order.order_no)
    assert link == f"{settings.OMS_SITE_URL}/payments/pay/{order.order_no}/"
    page = client.get(f"/payments/pay/{order.order_no}/")
    assert page.status_code == 200 and "¥210.00" in page.content.decode()
    answer = client.post(f"/payments/pay/{order.order_no}/", {"channel": "alipay"})
    assert answer.status_code == 302
    assert answer["Location"].startswith(get_gateway("alipay").config.gateway_url)
    assert Payment.objects.get().channel == "alipay"
    assert client.get("/payments/pay/000/").status_code == 404
