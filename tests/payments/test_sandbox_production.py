"""Production without gateway credentials: the sandbox is off, and no order is paid without a
verified notify.

`production` below is what oms.settings.prod gives when nobody configured a gateway:
OMS_SANDBOX_ENABLED off and every credential setting empty. The last tests run the real
oms.settings.prod in a subprocess, as CI does.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.checks import ERROR, INFO, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orders.models import Order, OrderEvent, OrderStatus
from payments.errors import GatewayNotConfigured
from payments.gateways import get_gateway, has_credentials, is_configured, is_sandbox
from payments.models import Payment, PaymentNotification, ReconciliationCase, Refund
from payments.sandbox import urls as sandbox_urls
from payments.sandbox.models import SandboxNotify, SandboxTrade
from payments.sandbox.services import delivery_headers, sandbox_pay, sandbox_trade_open
from payments.sandbox.tasks import sandbox_deliver_notify, sandbox_redeliver_overdue_notifies
from payments.services import payment_sync
from payments.tasks import execute_refund
from tests.payments.ledger_factories import refund_of, succeeded_payment

CHANNELS = ["alipay", "wechatpay"]
CREDENTIAL_SETTINGS = [
    "ALIPAY_APP_ID",
    "ALIPAY_SELLER_ID",
    "ALIPAY_PUBLIC_KEY_PATH",
    "ALIPAY_PRIVATE_KEY_PATH",
    "WECHATPAY_MCHID",
    "WECHATPAY_APPID",
    "WECHATPAY_APIV3_KEY",
    "WECHATPAY_PUBLIC_KEY_PATH",
    "WECHATPAY_PUBLIC_KEY_ID",
    "WECHATPAY_PRIVATE_KEY_PATH",
    "WECHATPAY_CERT_SERIAL",
]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def production(settings, sandbox_key_dir):
    """Production settings as a fresh deploy has them: no credentials, the sandbox off."""
    for name in CREDENTIAL_SETTINGS:
        setattr(settings, name, "")
    settings.OMS_SANDBOX_ENABLED = False
    settings.SANDBOX_KEY_DIR = sandbox_key_dir  # the keys a forger would sign with
    return settings


def order_of(created: dict) -> Order:
    return Order.objects.get(order_no=created["order_no"])


def open_attempt(order: Order, channel: str) -> Payment:
    """An attempt as payment_start leaves it (opened while the sandbox was still on)."""
    return Payment.objects.create(
        order=order,
        channel=channel,
        out_trade_no=f"{order.order_no}P01",
        amount=order.payable_total,
        expires_at=order.payment_deadline,
    )


def sandbox_url_examples() -> list[tuple[str, str]]:
    """(name, path) for every route of the sandbox, so a new one cannot escape the switch."""
    examples = []
    for pattern in sandbox_urls.urlpatterns:
        kwargs = {name: "ORDER2026PAY01" for name in pattern.pattern.converters}
        examples.append((pattern.name, reverse(f"payments_sandbox:{pattern.name}", kwargs=kwargs)))
    return examples


# --- which gateway a channel talks to ----------------------------------------------------------


@pytest.mark.parametrize(
    ("enabled", "app_id", "sandbox", "configured"),
    [(True, "", True, True), (True, "2021000000000001", False, True), (False, "", False, False)]
    + [(False, "2021000000000001", False, True)],
)
def test_a_channel_uses_the_sandbox_only_when_it_is_enabled_and_has_no_credentials(
    settings, enabled, app_id, sandbox, configured
):
    settings.OMS_SANDBOX_ENABLED, settings.ALIPAY_APP_ID = enabled, app_id
    assert has_credentials("alipay") is bool(app_id)
    assert (is_sandbox("alipay"), is_configured("alipay")) == (sandbox, configured)


@pytest.mark.parametrize("channel", CHANNELS)
def test_get_gateway_refuses_a_channel_with_nowhere_to_go(production, channel):
    with pytest.raises(GatewayNotConfigured) as raised:
        get_gateway(channel)
    assert (raised.value.code, raised.value.status_code, raised.value.details) == (
        "gateway_not_configured",
        409,
        {"channel": channel},
    )


# --- the sandbox's own URLs and jobs -------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "path"), sandbox_url_examples())
def test_every_sandbox_url_answers_404(production, name, path):
    client = Client(enforce_csrf_checks=True)  # a token-less POST is a 404 too, not a 403
    assert client.get(path).status_code == 404
    assert client.post(path, {"action": "pay"}).status_code == 404


@pytest.mark.django_db
def test_the_cashier_of_a_real_trade_is_gone_and_cannot_pay_it(production, client):
    production.OMS_SANDBOX_ENABLED = True
    trade = sandbox_trade_open(
        channel="alipay",
        out_trade_no="ORDER2026PAY01",
        amount=Decimal("88.80"),
        subject="沙箱测试商品",
        time_expire=None,
        notify_url="",
    )
    cashier = f"/payments/sandbox/pay/{trade.out_trade_no}/?channel=alipay"
    assert client.get(cashier).status_code == 200  # the same page, while the sandbox is on
    strict = Client(enforce_csrf_checks=True)
    assert strict.post(cashier, {"action": "pay", "channel": "alipay"}).status_code == 403  # CSRF still guards it

    production.OMS_SANDBOX_ENABLED = False
    assert client.get(cashier).status_code == 404
    assert client.post(cashier, {"action": "pay", "channel": "alipay"}).status_code == 404
    trade.refresh_from_db()
    assert trade.status == SandboxTrade.Status.WAIT_BUYER_PAY
    assert not SandboxNotify.objects.exists()


@pytest.mark.django_db
def test_the_sandbox_jobs_deliver_nothing_while_it_is_off(production, capture_server, queued_deliveries):
    production.OMS_SANDBOX_ENABLED = True
    production.OMS_SITE_URL = capture_server.url
    sandbox_trade_open(
        channel="alipay",
        out_trade_no="ORDER2026PAY01",
        amount=Decimal("88.80"),
        subject="沙箱测试商品",
        time_expire=None,
        notify_url="",
    )
    sandbox_pay(channel="alipay", out_trade_no="ORDER2026PAY01")
    (notify,) = SandboxNotify.objects.all()
    SandboxNotify.objects.update(next_attempt_at=timezone.now() - timedelta(hours=1))  # overdue

    production.OMS_SANDBOX_ENABLED = False
    assert sandbox_redeliver_overdue_notifies() == 0
    sandbox_deliver_notify.run(notify.pk)
    assert queued_deliveries == []
    assert capture_server.requests == []
    notify.refresh_from_db()
    assert (notify.attempts, notify.delivered_at) == (0, None)

    production.OMS_SANDBOX_ENABLED = True  # the same job, switched on, does pick it up
    assert sandbox_redeliver_overdue_notifies() == 1
    assert queued_deliveries == [(notify.pk, None)]


# --- starting a payment ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_starting_a_payment_answers_409_and_writes_nothing(production, api, create_order, channel):
    order = order_of(create_order())
    events = OrderEvent.objects.filter(order=order).count()

    response = api.post(f"/api/v1/orders/{order.order_no}/payments/", {"channel": channel}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["details"]) == ("gateway_not_configured", {"channel": channel})
    assert {"alipay": "支付宝", "wechatpay": "微信支付"}[channel] in body["message"]
    assert "尚未配置" in body["message"]
    assert "pay_url" not in body and "code_url" not in body
    assert not Payment.objects.exists()
    assert OrderEvent.objects.filter(order=order).count() == events
    assert not OrderEvent.objects.filter(type=OrderEvent.Type.PAYMENT_STARTED).exists()


@pytest.mark.django_db
def test_an_open_attempt_is_not_reused_once_the_sandbox_is_off(production, api, create_order):
    order = order_of(create_order())
    attempt = open_attempt(order, "alipay")
    response = api.post(f"/api/v1/orders/{order.order_no}/payments/", {"channel": "alipay"}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "gateway_not_configured")
    assert list(Payment.objects.all()) == [attempt]


@pytest.mark.django_db
def test_the_one_click_pay_page_says_the_channel_is_not_configured(production, client, create_order):
    order = order_of(create_order())
    response = client.post(f"/payments/pay/{order.order_no}/", {"channel": "alipay"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "支付宝" in page and "尚未配置" in page
    assert "/payments/sandbox/" not in page
    assert not Payment.objects.exists()


# --- notifies ------------------------------------------------------------------------------


def post_notify(client, notify: SandboxNotify):
    """Post what the sandbox would have delivered, byte for byte, to our notify URL."""
    headers = delivery_headers(notify, timezone.now())
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    content_type = extra.pop("HTTP_CONTENT_TYPE")
    return client.post(f"/payments/notify/{notify.channel}/", notify.body, content_type=content_type, **extra)


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_a_notify_signed_with_the_sandbox_keys_pays_nothing_while_it_is_off(production, client, create_order, channel):
    """No order is paid without a verified notify, and with the sandbox off nothing verifies."""
    order = order_of(create_order())
    payment = open_attempt(order, channel)
    sandbox_trade_open(
        channel=channel,
        out_trade_no=payment.out_trade_no,
        amount=payment.amount,
        subject="伪造",
        time_expire=None,
        notify_url="",
    )
    sandbox_pay(channel=channel, out_trade_no=payment.out_trade_no)  # signed with the sandbox's keys
    (forged,) = SandboxNotify.objects.filter(channel=channel)

    response = post_notify(client, forged)

    if channel == "alipay":
        assert (response.status_code, response.content) == (200, b"fail")
    else:
        assert response.status_code == 401
        assert response.json() == {"code": "FAIL", "message": "channel not configured"}
    order.refresh_from_db()
    payment.refresh_from_db()
    assert (order.status, order.paid_total) == (OrderStatus.PENDING_PAYMENT, Decimal("0.00"))
    assert payment.status == Payment.Status.CREATED
    (inbox,) = PaymentNotification.objects.all()
    assert (inbox.outcome, inbox.verified, inbox.verify_error) == ("rejected", False, "channel not configured")

    # The very same notify is genuine to a sandbox that is on: it was refused for the switch alone.
    production.OMS_SANDBOX_ENABLED = True
    post_notify(client, forged)
    order.refresh_from_db()
    assert order.status != OrderStatus.PENDING_PAYMENT and order.paid_total == payment.amount


# --- what was left behind when the sandbox was switched off -----------------------------------


@pytest.mark.django_db
def test_the_gateway_check_counts_an_attempt_it_cannot_ask_about(production, create_order):
    order = order_of(create_order())
    attempt = open_attempt(order, "wechatpay")
    report = payment_sync(order=order)
    attempt.refresh_from_db()
    assert (report.errors, report.applied, report.closed) == (1, 0, 0)
    assert attempt.status == Payment.Status.CREATED


@pytest.mark.django_db
def test_a_refund_with_no_gateway_to_go_to_fails_into_a_finance_case(production, create_order):
    order = order_of(create_order())
    payment = succeeded_payment(order, channel="alipay")
    refund = refund_of(payment, amount=Decimal("10.00"), status=Refund.Status.APPROVED)

    assert execute_refund(refund.pk) == "failed"

    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert "尚未配置" in refund.last_error
    assert ReconciliationCase.objects.filter(type=ReconciliationCase.Type.REFUND_FAILED, refund=refund).exists()


# --- the deploy check ----------------------------------------------------------------------


def oms_messages():
    return [m for m in run_checks(include_deployment_checks=True) if m.id.startswith("oms.")]


def test_the_deploy_check_fails_naming_the_sandbox(production):
    messages = oms_messages()
    assert [(m.id, m.level) for m in messages] == [("oms.E001", ERROR), ("oms.E001", ERROR)]
    for message, channel in zip(messages, CHANNELS, strict=True):
        assert channel in message.msg and "sandbox" in message.msg and "OMS_SANDBOX_ENABLED" in message.msg
    with pytest.raises(SystemCheckError, match=r"oms\.E001.*sandbox"):
        call_command("check", "--deploy")


def test_the_deploy_check_names_only_the_channel_without_credentials(production):
    production.ALIPAY_APP_ID = "2021000000000001"
    (message,) = oms_messages()
    assert message.id == "oms.E001" and "wechatpay" in message.msg and "alipay" not in message.msg


def test_the_deploy_check_asks_only_the_channels_the_shop_uses(production):
    production.ALIPAY_APP_ID = "2021000000000001"
    production.OMS_PAYMENT_CHANNELS = ["alipay"]
    assert oms_messages() == []


def test_the_deploy_check_passes_a_staging_site_that_enables_the_sandbox(production):
    production.OMS_SANDBOX_ENABLED = True
    messages = oms_messages()
    assert [(m.id, m.level) for m in messages] == [("oms.I001", INFO), ("oms.I001", INFO)]
    call_command("check", "--deploy")  # raises SystemCheckError on any error


def test_the_deploy_check_is_silent_when_every_channel_has_credentials(production):
    production.ALIPAY_APP_ID, production.WECHATPAY_MCHID = "2021000000000001", "1900000001"
    assert oms_messages() == []


def manage_prod_check(**env_extra: str) -> subprocess.CompletedProcess[str]:
    """`manage.py check --deploy --fail-level WARNING` under the real oms.settings.prod, as CI runs it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DJANGO_SETTINGS_MODULE", "OMS_SANDBOX_ENABLED") and name not in CREDENTIAL_SETTINGS
    }
    env.update(DJANGO_SETTINGS_MODULE="oms.settings.prod", SECRET_KEY=secrets.token_urlsafe(64), **env_extra)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_have_the_sandbox_off_and_fail_the_deploy_check():
    result = manage_prod_check()
    assert result.returncode != 0
    assert "oms.E001" in result.stderr and "sandbox" in result.stderr


def test_production_settings_pass_the_deploy_check_with_the_sandbox_on_for_staging():
    result = manage_prod_check(OMS_SANDBOX_ENABLED="true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "oms.I001" in result.stdout + result.stderr
