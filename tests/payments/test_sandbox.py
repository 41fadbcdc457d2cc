"""The sandbox gateway: cashier page, fault injection, and notify delivery with the real retry schedules."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from payments.gateways import VerificationError, get_gateway
from payments.sandbox import keys as sandbox_keys_module
from payments.sandbox.keys import sandbox_keys
from payments.sandbox.models import SandboxNotify, SandboxTrade
from payments.sandbox.services import (
    RETRY_SCHEDULE,
    SandboxError,
    SandboxFaults,
    sandbox_pay,
    sandbox_refund,
    sandbox_trade_open,
)
from payments.sandbox.tasks import sandbox_deliver_notify

CHANNELS = ["alipay", "wechatpay"]
SUBJECT = "沙箱测试商品 A+B 100% & 包邮"


def open_trade(channel: str, out_trade_no: str, amount: str = "88.80", minutes: int = 30) -> SandboxTrade:
    return sandbox_trade_open(
        channel=channel,
        out_trade_no=out_trade_no,
        amount=Decimal(amount),
        subject=SUBJECT,
        time_expire=timezone.now() + timedelta(minutes=minutes),
        notify_url="",
    )


def cashier_url(trade: SandboxTrade) -> str:
    return f"/payments/sandbox/pay/{trade.out_trade_no}/?channel={trade.channel}"


@pytest.fixture
def to_capture(sandbox_settings, capture_server, queued_deliveries):
    """Notifies written from now on are addressed to the local capture server."""
    sandbox_settings.OMS_SITE_URL = capture_server.url
    sandbox_settings.SANDBOX_RETRY_SCALE = 0.01
    return capture_server


def deliver_all(trade: SandboxTrade) -> list[SandboxNotify]:
    notifies = list(SandboxNotify.objects.filter(trade=trade).order_by("pk"))
    for notify in notifies:
        sandbox_deliver_notify.run(notify.pk)
    return notifies


def parse_captured(channel: str, capture):
    """Feed what the merchant received, byte for byte, to our production verifier."""
    gateway = get_gateway(channel)
    results = []
    for request in capture.requests:
        try:
            results.append(gateway.parse_notify(body=request.body, headers=request.headers, now=timezone.now()))
        except VerificationError as error:
            results.append(error)
    return results


# --- cashier page -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_cashier_page_renders_in_chinese(client, sandbox_settings, channel):
    trade = open_trade(channel, f"CASHIER-{channel}")

    response = client.get(cashier_url(trade))

    assert response.status_code == 200
    page = response.content.decode()
    for text in ("收银台", "支付", "取消", "故障注入", SUBJECT.replace("&", "&amp;"), "88.80", "支付截止"):
        assert text in page
    for field in ('name="duplicate"', 'name="bad_signature"', 'name="tampered_amount"', 'name="delay_seconds"'):
        assert field in page
    assert timezone.localtime(trade.time_expire).strftime("%Y-%m-%d %H:%M") in page


@pytest.mark.django_db
def test_unknown_trade_has_no_cashier(client, sandbox_settings):
    assert client.get("/payments/sandbox/pay/NOPE/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_pay_on_the_page_writes_the_outbox_and_queues_delivery_on_commit(
    client, sandbox_settings, queued_deliveries, django_capture_on_commit_callbacks, channel
):
    trade = open_trade(channel, f"PAGE-PAY-{channel}")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(cashier_url(trade), {"action": "pay", "channel": channel})

    assert response.status_code == 200
    assert "支付成功" in response.content.decode()
    trade.refresh_from_db()
    assert trade.status == SandboxTrade.Status.TRADE_SUCCESS and trade.trade_no and trade.paid_at
    (notify,) = SandboxNotify.objects.filter(trade=trade)
    assert notify.target_url == f"{sandbox_settings.OMS_SITE_URL}/payments/notify/{channel}/"
    assert notify.delivered_at is None and notify.attempts == 0
    assert queued_deliveries == [(notify.pk, None)]


@pytest.mark.django_db
def test_pay_on_the_page_with_faults_and_delay(
    client, sandbox_settings, queued_deliveries, django_capture_on_commit_callbacks
):
    trade = open_trade("alipay", "PAGE-FAULTS")
    form = {"action": "pay", "channel": "alipay", "duplicate": "on", "bad_signature": "on", "delay_seconds": "7"}

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(cashier_url(trade), form).status_code == 200

    trade.refresh_from_db()
    assert trade.faults == {"duplicate": True, "bad_signature": True, "tampered_amount": False, "delay_seconds": 7}
    assert sorted(countdown for _id, countdown in queued_deliveries) == [7, 7]


@pytest.mark.django_db
def test_cancel_leaves_the_trade_waiting(client, sandbox_settings):
    trade = open_trade("wechatpay", "PAGE-CANCEL")

    response = client.post(cashier_url(trade), {"action": "cancel", "channel": "wechatpay"})

    assert response.status_code == 200
    assert "已取消" in response.content.decode()
    trade.refresh_from_db()
    assert trade.status == SandboxTrade.Status.WAIT_BUYER_PAY
    assert not SandboxNotify.objects.exists()


@pytest.mark.django_db
def test_expired_or_paid_trades_cannot_be_paid(client, sandbox_settings, queued_deliveries):
    expired = open_trade("alipay", "PAGE-EXPIRED", minutes=-1)
    response = client.post(cashier_url(expired), {"action": "pay", "channel": "alipay"})
    assert response.status_code == 409 and "超时" in response.content.decode()

    paid = open_trade("alipay", "PAGE-TWICE")
    sandbox_pay(channel="alipay", out_trade_no="PAGE-TWICE")
    with pytest.raises(SandboxError) as error:
        sandbox_pay(channel="alipay", out_trade_no="PAGE-TWICE")
    assert error.value.code == "trade_paid"
    assert SandboxNotify.objects.filter(trade=paid).count() == 1
    assert not SandboxNotify.objects.filter(trade=expired).exists()


# --- faults: what reaches the merchant, checked by our production verifier -----------------------


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_normal_notify_is_accepted(to_capture, channel):
    trade = open_trade(channel, f"FAULT-NONE-{channel}")
    sandbox_pay(channel=channel, out_trade_no=trade.out_trade_no)

    (notify,) = deliver_all(trade)

    (message,) = parse_captured(channel, to_capture)
    trade.refresh_from_db()
    gateway = get_gateway(channel)
    assert to_capture.requests[0].path == f"/payments/notify/{channel}/"
    assert message.kind == "payment" and message.succeeded
    assert (message.out_trade_no, message.amount, message.gateway_trade_no) == (
        trade.out_trade_no,
        Decimal("88.80"),
        trade.trade_no,
    )
    assert message.dedupe_key == notify.dedupe_key
    assert (message.merchant_id, message.app_id) == (gateway.merchant_id, gateway.app_id)
    if channel == "alipay":
        assert message.fields["subject"] == SUBJECT
    notify.refresh_from_db()
    assert notify.delivered_at is not None and notify.attempts == 1


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_duplicate_fault_delivers_the_same_notify_twice(to_capture, channel):
    trade = open_trade(channel, f"FAULT-DUP-{channel}")
    sandbox_pay(channel=channel, out_trade_no=trade.out_trade_no, faults=SandboxFaults(duplicate=True))

    deliver_all(trade)

    first, second = parse_captured(channel, to_capture)
    assert first.dedupe_key == second.dedupe_key
    assert first.amount == second.amount == Decimal("88.80")
    assert to_capture.requests[0].body == to_capture.requests[1].body


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_bad_signature_fault_is_rejected(to_capture, channel):
    trade = open_trade(channel, f"FAULT-SIG-{channel}")
    sandbox_pay(channel=channel, out_trade_no=trade.out_trade_no, faults=SandboxFaults(bad_signature=True))

    deliver_all(trade)

    (result,) = parse_captured(channel, to_capture)
    assert isinstance(result, VerificationError)
    assert result.reason == "bad signature"


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_tampered_amount_fault_is_rejected(to_capture, channel):
    trade = open_trade(channel, f"FAULT-AMT-{channel}")
    sandbox_pay(channel=channel, out_trade_no=trade.out_trade_no, faults=SandboxFaults(tampered_amount=True))

    (notify,) = deliver_all(trade)

    (result,) = parse_captured(channel, to_capture)
    assert isinstance(result, VerificationError)
    assert result.reason == "bad signature"
    assert notify.body != notify.signed_body
    if channel == "alipay":
        assert "total_amount=88.79" in to_capture.requests[0].body.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_delay_fault_postpones_the_first_delivery(sandbox_settings, queued_deliveries, channel):
    trade = open_trade(channel, f"FAULT-DELAY-{channel}")
    before = timezone.now()

    sandbox_pay(channel=channel, out_trade_no=trade.out_trade_no, faults=SandboxFaults(delay_seconds=90))

    (notify,) = SandboxNotify.objects.filter(trade=trade)
    assert notify.next_attempt_at >= before + timedelta(seconds=90)


@pytest.mark.django_db
def test_refund_notices_verify_as_refunds(to_capture):
    for channel in CHANNELS:
        open_trade(channel, f"REFUND-NOTICE-{channel}", "50.00")
        sandbox_pay(channel=channel, out_trade_no=f"REFUND-NOTICE-{channel}")
        refund, created = sandbox_refund(
            channel=channel,
            out_trade_no=f"REFUND-NOTICE-{channel}",
            out_refund_no=f"RN-{channel}-1",
            amount=Decimal("50.00"),
        )
        assert created
        sandbox_deliver_notify.run(SandboxNotify.objects.get(event__startswith="REFUND", trade=refund.trade).pk)
    alipay_notice, wechat_notice = parse_captured("alipay", to_capture)[0], parse_captured("wechatpay", to_capture)[1]
    assert (alipay_notice.kind, alipay_notice.out_refund_no, alipay_notice.amount) == (
        "refund",
        "RN-alipay-1",
        Decimal("50.00"),
    )
    assert alipay_notice.fields["trade_status"] == "TRADE_CLOSED"  # a full refund closes an Alipay trade
    assert (wechat_notice.kind, wechat_notice.out_refund_no, wechat_notice.amount) == (
        "refund",
        "RN-wechatpay-1",
        Decimal("50.00"),
    )


# --- delivery and retries --------------------------------------------------------------------


@pytest.mark.django_db
def test_alipay_delivery_retries_until_the_bare_body_success(to_capture, queued_deliveries):
    trade = open_trade("alipay", "RETRY-ALI")
    sandbox_pay(channel="alipay", out_trade_no="RETRY-ALI")
    (notify,) = SandboxNotify.objects.filter(trade=trade)
    to_capture.answers.extend([(200, b"fail"), (200, b"<html>success</html>"), (200, b"success")])

    sandbox_deliver_notify.run(notify.pk)
    notify.refresh_from_db()
    assert (notify.attempts, notify.last_status, notify.delivered_at) == (1, 200, None)
    assert queued_deliveries == [(notify.pk, pytest.approx(240 * 0.01))]
    assert notify.next_attempt_at is not None

    sandbox_deliver_notify.run(notify.pk)
    sandbox_deliver_notify.run(notify.pk)
    notify.refresh_from_db()
    assert notify.delivered_at is not None and notify.attempts == 3
    assert [countdown for _id, countdown in queued_deliveries] == [pytest.approx(2.4), pytest.approx(6.0)]

    sandbox_deliver_notify.run(notify.pk)  # idempotent once delivered
    assert len(to_capture.requests) == 3
    request_bodies = {request.body for request in to_capture.requests}
    assert len(request_bodies) == 1  # every retry is the same notify, same notify_id


@pytest.mark.django_db
def test_wechatpay_delivery_retries_on_non_2xx_and_signs_each_attempt_afresh(to_capture, queued_deliveries):
    trade = open_trade("wechatpay", "RETRY-WX")
    sandbox_pay(channel="wechatpay", out_trade_no="RETRY-WX")
    (notify,) = SandboxNotify.objects.filter(trade=trade)
    to_capture.answers.extend([(500, b'{"code":"FAIL","message":"busy"}'), (204, b"")])

    sandbox_deliver_notify.run(notify.pk)
    sandbox_deliver_notify.run(notify.pk)

    notify.refresh_from_db()
    assert notify.delivered_at is not None and notify.last_status == 204
    assert queued_deliveries == [(notify.pk, pytest.approx(15 * 0.01))]
    first, second = to_capture.requests
    assert first.body == second.body
    assert first.headers["Wechatpay-Nonce"] != second.headers["Wechatpay-Nonce"]
    assert all(not isinstance(result, VerificationError) for result in parse_captured("wechatpay", to_capture))


@pytest.mark.django_db
@pytest.mark.parametrize("channel", CHANNELS)
def test_delivery_gives_up_when_the_schedule_runs_out(to_capture, queued_deliveries, channel):
    trade = open_trade(channel, f"GIVE-UP-{channel}")
    sandbox_pay(channel=channel, out_trade_no=trade.out_trade_no)
    (notify,) = SandboxNotify.objects.filter(trade=trade)
    schedule = RETRY_SCHEDULE[channel]
    SandboxNotify.objects.filter(pk=notify.pk).update(attempts=len(schedule))
    to_capture.default = (500, b"")

    sandbox_deliver_notify.run(notify.pk)

    notify.refresh_from_db()
    assert notify.attempts == len(schedule) + 1
    assert notify.gave_up_at is not None and notify.delivered_at is None
    assert queued_deliveries == []
    sandbox_deliver_notify.run(notify.pk)
    assert len(to_capture.requests) == 1


@pytest.mark.django_db
def test_unreachable_merchant_is_retried(sandbox_settings, queued_deliveries):
    sandbox_settings.OMS_SITE_URL = "http://127.0.0.1:9"
    sandbox_settings.SANDBOX_RETRY_SCALE = 1
    trade = open_trade("wechatpay", "UNREACHABLE")
    sandbox_pay(channel="wechatpay", out_trade_no="UNREACHABLE")
    (notify,) = SandboxNotify.objects.filter(trade=trade)

    sandbox_deliver_notify.run(notify.pk)

    notify.refresh_from_db()
    assert notify.last_status is None and "ConnectionError" in notify.last_response
    assert queued_deliveries == [(notify.pk, 15)]


# --- key material -----------------------------------------------------------------------------


def test_keys_are_made_once_per_directory_and_kept_private(tmp_path):
    first = sandbox_keys(tmp_path / "a")
    assert sandbox_keys(tmp_path / "a") is first
    other = sandbox_keys(tmp_path / "b")
    assert other.alipay_platform_private_pem != first.alipay_platform_private_pem
    assert first.wechatpay_public_key_id.startswith("PUB_KEY_ID_SANDBOX")
    assert len(first.wechatpay_apiv3_key) == 32
    key_file = tmp_path / "a" / sandbox_keys_module.KEY_FILE_NAME
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert [path.name for path in (tmp_path / "a").iterdir()] == [sandbox_keys_module.KEY_FILE_NAME]


def test_the_first_writer_wins_a_race(tmp_path):
    path = tmp_path / sandbox_keys_module.KEY_FILE_NAME
    winner = sandbox_keys_module.SandboxKeys(**{name: "first" for name in _key_fields()})
    loser = sandbox_keys_module.SandboxKeys(**{name: "second" for name in _key_fields()})

    sandbox_keys_module._write_once(path, winner)
    sandbox_keys_module._write_once(path, loser)

    assert sandbox_keys_module._read(path) == winner
    assert [entry.name for entry in tmp_path.iterdir()] == [sandbox_keys_module.KEY_FILE_NAME]


def _key_fields() -> list[str]:
    return [name for name in sandbox_keys_module.SandboxKeys.__dataclass_fields__ if name != "version"]


@pytest.mark.django_db
def test_cashier_of_a_paid_or_expired_trade_offers_no_pay_button(client, sandbox_settings, queued_deliveries):
    paid = open_trade("wechatpay", "PAGE-DONE")
    sandbox_pay(channel="wechatpay", out_trade_no="PAGE-DONE")
    expired = open_trade("wechatpay", "PAGE-LATE", minutes=-5)

    paid_page = client.get(cashier_url(paid)).content.decode()
    late_page = client.get(cashier_url(expired)).content.decode()

    assert "支付成功" in paid_page and 'value="pay"' not in paid_page
    assert "交易已关闭" in late_page and 'value="pay"' not in late_page
    expired.refresh_from_db()
    assert expired.status == SandboxTrade.Status.TRADE_CLOSED
