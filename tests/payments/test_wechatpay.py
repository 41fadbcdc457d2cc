"""WeChat Pay adapter: notify verification and decryption, fen/yuan, and the v3 API against the sandbox."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests
from django.utils import timezone

from payments.gateways import GatewayError, VerificationError, get_gateway
from payments.gateways.crypto import aes_gcm_encrypt, generate_rsa_keypair, random_nonce, rsa_sign
from payments.gateways.wechatpay import (
    WechatPayConfig,
    WechatPayGateway,
    fen_to_yuan,
    parse_rfc3339,
    signing_message,
    yuan_to_fen,
)
from payments.sandbox.models import SandboxNotify, SandboxRefund, SandboxTrade
from payments.sandbox.services import sandbox_pay

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=SHANGHAI)
APIV3_KEY = "0123456789abcdefABCDEF0123456789"
PUBLIC_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, str]]:
    return {name: generate_rsa_keypair() for name in ("platform", "merchant", "stranger")}


@pytest.fixture(scope="module")
def gateway(keys) -> WechatPayGateway:
    return WechatPayGateway(
        WechatPayConfig(
            mchid="1900000109",
            appid="wxd678efh567hg6787",
            apiv3_key=APIV3_KEY,
            platform_public_key_pem=keys["platform"][1],
            platform_public_key_id=PUBLIC_KEY_ID,
            merchant_private_key_pem=keys["merchant"][0],
            merchant_cert_serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            api_base="https://api.example.invalid",
            notify_url="https://oms.example.invalid/payments/notify/wechatpay/",
        )
    )


def transaction(**overrides: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "mchid": "1900000109",
        "appid": "wxd678efh567hg6787",
        "out_trade_no": "202503010000000001P01",
        "transaction_id": "4200000001202503011234567890",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "CMC",
        "attach": "",
        "success_time": "2025-03-01T11:59:58+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": 18000, "payer_total": 18000, "currency": "CNY", "payer_currency": "CNY"},
    }
    payload.update(overrides)
    return payload


def envelope(payload: dict[str, object], *, event_type: str = "TRANSACTION.SUCCESS", key: str = APIV3_KEY) -> bytes:
    nonce = random_nonce(12)
    original_type = "refund" if event_type.startswith("REFUND.") else "transaction"
    body = {
        "id": "EV-2018022511223320873",
        "create_time": "2025-03-01T12:00:00+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": aes_gcm_encrypt(key, nonce, json.dumps(payload, ensure_ascii=False), original_type),
            "associated_data": original_type,
            "nonce": nonce,
        },
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def platform_headers(
    body: bytes, private_pem: str, *, at: datetime = NOW, serial: str = PUBLIC_KEY_ID
) -> dict[str, str]:
    timestamp, nonce = str(int(at.timestamp())), random_nonce(32)
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": rsa_sign(private_pem, signing_message(timestamp, nonce, body)),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


# --- notify ------------------------------------------------------------------------------


def test_valid_notify_verifies_and_decrypts(gateway, keys):
    body = envelope(transaction())
    headers = {name.lower(): value for name, value in platform_headers(body, keys["platform"][0]).items()}

    message = gateway.parse_notify(body=body, headers=headers, now=NOW)

    assert message.kind == "payment"
    assert message.succeeded is True
    assert message.dedupe_key == "EV-2018022511223320873"
    assert message.amount == Decimal("180.00")
    assert message.out_trade_no == "202503010000000001P01"
    assert message.gateway_trade_no == "4200000001202503011234567890"
    assert (message.merchant_id, message.app_id) == ("1900000109", "wxd678efh567hg6787")
    assert message.occurred_at == datetime(2025, 3, 1, 11, 59, 58, tzinfo=SHANGHAI)
    assert message.fields["resource"]["payer"]["openid"] == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.mark.parametrize("skew", [timedelta(seconds=301), timedelta(seconds=-301), timedelta(hours=2)])
def test_stale_timestamp_is_rejected(gateway, keys, skew):
    body = envelope(transaction())
    headers = platform_headers(body, keys["platform"][0], at=NOW - skew)
    with pytest.raises(VerificationError, match="5 minute"):
        gateway.parse_notify(body=body, headers=headers, now=NOW)


def test_timestamp_just_inside_the_window_is_accepted(gateway, keys):
    body = envelope(transaction())
    headers = platform_headers(body, keys["platform"][0], at=NOW - timedelta(seconds=299))
    assert gateway.parse_notify(body=body, headers=headers, now=NOW).succeeded


def test_wrong_serial_is_rejected(gateway, keys):
    body = envelope(transaction())
    headers = platform_headers(body, keys["platform"][0], serial="PUB_KEY_ID_SOMEONE_ELSE")
    with pytest.raises(VerificationError, match="Wechatpay-Serial"):
        gateway.parse_notify(body=body, headers=headers, now=NOW)


@pytest.mark.parametrize(
    "missing", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]
)
def test_missing_header_is_rejected(gateway, keys, missing):
    body = envelope(transaction())
    headers = platform_headers(body, keys["platform"][0])
    del headers[missing]
    with pytest.raises(VerificationError, match=f"missing {missing}"):
        gateway.parse_notify(body=body, headers=headers, now=NOW)


def test_bad_signature_probe_is_rejected(gateway, keys):
    """WeChat Pay's own probes: well-formed headers, a signature that does not match."""
    body = envelope(transaction())
    headers = platform_headers(body, keys["stranger"][0])
    with pytest.raises(VerificationError, match="bad signature"):
        gateway.parse_notify(body=body, headers=headers, now=NOW)
    headers["Wechatpay-Signature"] = base64.b64encode(b"\x00" * 256).decode()
    with pytest.raises(VerificationError, match="bad signature"):
        gateway.parse_notify(body=body, headers=headers, now=NOW)


def test_tampered_ciphertext_is_rejected(gateway, keys):
    body = json.loads(envelope(transaction()))
    sealed = bytearray(base64.b64decode(body["resource"]["ciphertext"]))
    sealed[3] ^= 0x01
    body["resource"]["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
    tampered = json.dumps(body).encode()

    # Signed after tampering, so only the GCM tag can catch it.
    with pytest.raises(VerificationError, match="decryption failed"):
        gateway.parse_notify(body=tampered, headers=platform_headers(tampered, keys["platform"][0]), now=NOW)


def test_body_changed_after_signing_is_rejected(gateway, keys):
    genuine = envelope(transaction())
    headers = platform_headers(genuine, keys["platform"][0])
    forged = envelope(transaction(amount={"total": 1, "payer_total": 1, "currency": "CNY", "payer_currency": "CNY"}))
    with pytest.raises(VerificationError, match="bad signature"):
        gateway.parse_notify(body=forged, headers=headers, now=NOW)


def test_resource_sealed_with_another_apiv3_key_is_rejected(gateway, keys):
    body = envelope(transaction(), key="X" * 32)
    with pytest.raises(VerificationError, match="decryption failed"):
        gateway.parse_notify(body=body, headers=platform_headers(body, keys["platform"][0]), now=NOW)


def test_not_success_trade_state_is_not_a_success(gateway, keys):
    body = envelope(transaction(trade_state="PAYERROR"))
    message = gateway.parse_notify(body=body, headers=platform_headers(body, keys["platform"][0]), now=NOW)
    assert (message.kind, message.succeeded) == ("payment", False)


def test_refund_notice(gateway, keys):
    payload = {
        "mchid": "1900000109",
        "out_trade_no": "202503010000000001P01",
        "transaction_id": "4200000001202503011234567890",
        "out_refund_no": "RF202503010001",
        "refund_id": "50000000382019052709732678859",
        "refund_status": "SUCCESS",
        "success_time": "2025-03-02T09:30:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": 18000, "refund": 3050, "payer_total": 18000, "payer_refund": 3050},
    }
    body = envelope(payload, event_type="REFUND.SUCCESS")

    message = gateway.parse_notify(body=body, headers=platform_headers(body, keys["platform"][0]), now=NOW)

    assert (message.kind, message.succeeded, message.amount) == ("refund", True, Decimal("30.50"))
    assert (message.out_refund_no, message.gateway_trade_no) == ("RF202503010001", "50000000382019052709732678859")
    assert message.occurred_at == parse_rfc3339("2025-03-02T09:30:00+08:00")


def test_other_events_are_other(gateway, keys):
    body = envelope(transaction(), event_type="TRANSACTION.CLOSED")
    message = gateway.parse_notify(body=body, headers=platform_headers(body, keys["platform"][0]), now=NOW)
    assert (message.kind, message.succeeded) == ("other", False)


# --- fen and yuan --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [(18000, "180.00"), (1, "0.01"), (0, "0.00"), (10, "0.10"), (1999999, "19999.99"), (10**12 + 7, "10000000000.07")],
)
def test_fen_to_yuan_is_exact(fen, yuan):
    converted = fen_to_yuan(fen)
    assert converted == Decimal(yuan)
    assert str(converted) == yuan


@pytest.mark.parametrize(
    ("yuan", "fen"), [("180.00", 18000), ("0.01", 1), ("0.1", 10), ("19999.99", 1999999), ("7", 700)]
)
def test_yuan_to_fen_is_exact(yuan, fen):
    assert yuan_to_fen(Decimal(yuan)) == fen


@pytest.mark.parametrize("bad", [1.0, "100", True, -1, None])
def test_fen_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError):
        fen_to_yuan(bad)


@pytest.mark.parametrize("bad", [Decimal("0.001"), Decimal("0"), Decimal("-1.00"), Decimal("NaN")])
def test_yuan_to_fen_never_rounds(bad):
    with pytest.raises(ValueError):
        yuan_to_fen(bad)


def test_notify_of_one_fen_is_one_cent(gateway, keys):
    body = envelope(transaction(amount={"total": 1, "payer_total": 1, "currency": "CNY", "payer_currency": "CNY"}))
    message = gateway.parse_notify(body=body, headers=platform_headers(body, keys["platform"][0]), now=NOW)
    assert message.amount == Decimal("0.01")


def test_notify_with_a_float_amount_is_refused(gateway, keys):
    body = envelope(transaction(amount={"total": 180.0, "currency": "CNY"}))
    with pytest.raises(VerificationError, match="malformed resource"):
        gateway.parse_notify(body=body, headers=platform_headers(body, keys["platform"][0]), now=NOW)


# --- against the sandbox gateway (real HTTP) -------------------------------------------------


def native(out_trade_no: str, amount: str = "180.00", minutes: int = 30):
    deadline = timezone.now() + timedelta(minutes=minutes)
    pay = get_gateway("wechatpay").build_pay(
        out_trade_no=out_trade_no, amount=Decimal(amount), subject="春季新品 T恤", expires_at=deadline
    )
    return pay, deadline


def test_native_pay_answers_the_cashier_url(live_sandbox):
    pay, deadline = native("WX-NATIVE-1")

    assert pay.code_url == f"{live_sandbox.url}/payments/sandbox/pay/WX-NATIVE-1/?channel=wechatpay"
    trade = SandboxTrade.objects.get(channel="wechatpay", out_trade_no="WX-NATIVE-1")
    assert trade.amount == Decimal("180.00")
    assert trade.time_expire <= deadline and deadline - trade.time_expire < timedelta(seconds=1)
    page = requests.get(pay.code_url, timeout=10)
    assert page.status_code == 200 and "微信支付" in page.text and "180.00" in page.text


def test_native_pay_is_idempotent_and_refuses_another_amount(live_sandbox):
    first, _ = native("WX-NATIVE-2", "20.00")
    again, _ = native("WX-NATIVE-2", "20.00")
    assert first.code_url == again.code_url

    with pytest.raises(GatewayError) as error:
        native("WX-NATIVE-2", "20.01")
    assert error.value.code == "OUT_TRADE_NO_USED"
    assert SandboxTrade.objects.filter(out_trade_no="WX-NATIVE-2").count() == 1


def test_query_and_close_an_unpaid_trade(live_sandbox):
    gateway = get_gateway("wechatpay")
    assert gateway.query(out_trade_no="WX-NEVER-1").exists is False

    native("WX-CLOSE-1")
    state = gateway.query(out_trade_no="WX-CLOSE-1")
    assert (state.exists, state.paid, state.closed, state.raw_state) == (True, False, False, "NOTPAY")
    assert state.amount == Decimal("180.00")

    assert gateway.close(out_trade_no="WX-CLOSE-1").closed is True
    assert gateway.close(out_trade_no="WX-CLOSE-1").closed is True  # closing twice is fine
    assert gateway.close(out_trade_no="WX-NEVER-1").closed is True
    closed = gateway.query(out_trade_no="WX-CLOSE-1")
    assert (closed.closed, closed.raw_state) == (True, "CLOSED")


def test_close_of_a_paid_trade_answers_orderpaid(live_sandbox):
    gateway = get_gateway("wechatpay")
    native("WX-PAID-1")
    trade = sandbox_pay(channel="wechatpay", out_trade_no="WX-PAID-1")

    result = gateway.close(out_trade_no="WX-PAID-1")

    assert (result.closed, result.already_paid) == (False, True)
    state = gateway.query(out_trade_no="WX-PAID-1")
    assert (state.paid, state.amount, state.gateway_trade_no) == (True, Decimal("180.00"), trade.trade_no)
    assert (state.merchant_id, state.app_id) == (gateway.merchant_id, gateway.app_id)
    assert state.paid_at is not None


def test_refund_is_idempotent_on_out_refund_no(live_sandbox, queued_deliveries):
    gateway = get_gateway("wechatpay")
    native("WX-REFUND-1", "100.00")
    sandbox_pay(channel="wechatpay", out_trade_no="WX-REFUND-1")
    args = {"out_trade_no": "WX-REFUND-1", "amount": Decimal("30.50"), "total": Decimal("100.00"), "reason": "退货"}

    first = gateway.refund(out_refund_no="WXRF-000001", **args)
    second = gateway.refund(out_refund_no="WXRF-000001", **args)

    assert first.status == "processing"  # the real platform's first answer
    assert second.status in ("processing", "succeeded")
    assert first.gateway_refund_no and first.gateway_refund_no == second.gateway_refund_no
    assert SandboxRefund.objects.filter(out_refund_no="WXRF-000001").count() == 1
    (notify,) = SandboxNotify.objects.filter(event="REFUND.SUCCESS", trade__out_trade_no="WX-REFUND-1")
    assert notify.pk in [notify_id for notify_id, _countdown in queued_deliveries]
    assert gateway.query(out_trade_no="WX-REFUND-1").raw_state == "REFUND"


def test_refund_business_errors_fail_without_raising(live_sandbox):
    gateway = get_gateway("wechatpay")
    native("WX-REFUND-2", "10.00")
    sandbox_pay(channel="wechatpay", out_trade_no="WX-REFUND-2")

    over = gateway.refund(
        out_trade_no="WX-REFUND-2",
        out_refund_no="WXRF-000002",
        amount=Decimal("10.01"),
        total=Decimal("10.00"),
        reason="",
    )
    unknown = gateway.refund(
        out_trade_no="WX-NONE-2", out_refund_no="WXRF-000003", amount=Decimal("1.00"), total=Decimal("1.00"), reason=""
    )

    assert over.status == "failed" and over.error.startswith("INVALID_REQUEST")
    assert unknown.status == "failed" and unknown.error.startswith("RESOURCE_NOT_EXISTS")


def test_answer_signed_with_another_key_is_not_trusted(live_sandbox, keys):
    real = get_gateway("wechatpay").config
    fooled = WechatPayGateway(WechatPayConfig(**{**real.__dict__, "platform_public_key_pem": keys["stranger"][1]}))
    with pytest.raises(GatewayError) as error:
        fooled.query(out_trade_no="WX-NEVER-2")
    assert error.value.code == "invalid_response_signature"


def test_request_signed_with_the_wrong_key_is_refused_by_the_gateway(live_sandbox, keys):
    real = get_gateway("wechatpay").config
    wrong = WechatPayGateway(WechatPayConfig(**{**real.__dict__, "merchant_private_key_pem": keys["stranger"][0]}))
    with pytest.raises(GatewayError) as error:
        wrong.query(out_trade_no="WX-NEVER-3")
    assert (error.value.code, error.value.retryable) == ("SIGN_ERROR", False)
    with pytest.raises(GatewayError):  # an auth failure is not a business refusal: never "failed"
        wrong.refund(
            out_trade_no="WX-NEVER-3",
            out_refund_no="WXRF-000004",
            amount=Decimal("1.00"),
            total=Decimal("1.00"),
            reason="",
        )


def test_network_failure_is_retryable(gateway):
    unreachable = WechatPayGateway(WechatPayConfig(**{**gateway.config.__dict__, "api_base": "http://127.0.0.1:9"}))
    with pytest.raises(GatewayError) as error:
        unreachable.refund(
            out_trade_no="X", out_refund_no="R", amount=Decimal("1.00"), total=Decimal("1.00"), reason=""
        )
    assert error.value.retryable is True
