"""Alipay adapter: the signing string, notify verification, page pay, and the API calls against the sandbox."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from django.utils import timezone

from payments import gateways
from payments.gateways import GatewayError, VerificationError, get_gateway
from payments.gateways.alipay import (
    AlipayConfig,
    AlipayGateway,
    alipay_signing_string,
    alipay_subject,
    top_level_members,
)
from payments.gateways.crypto import CryptoError, generate_rsa_keypair, load_private_key, rsa_sign, rsa_verify
from payments.sandbox.keys import sandbox_keys
from payments.sandbox.models import SandboxNotify, SandboxRefund, SandboxTrade
from payments.sandbox.services import sandbox_pay

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=SHANGHAI)
SUBJECT = "春季新品 T恤+短裤 100% 纯棉 & 包邮"


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, str]]:
    """Key pairs made for this module: Alipay's platform pair, our app pair, and a stranger's."""
    return {name: generate_rsa_keypair() for name in ("alipay", "app", "stranger")}


@pytest.fixture(scope="module")
def gateway(keys) -> AlipayGateway:
    return AlipayGateway(
        AlipayConfig(
            app_id="2021000000000001",
            seller_id="2088000000000001",
            gateway_url="https://openapi.example.invalid/gateway.do",
            alipay_public_key_pem=keys["alipay"][1],
            merchant_private_key_pem=keys["app"][0],
            notify_url="https://oms.example.invalid/payments/notify/alipay/",
        )
    )


def notify_fields(**overrides: str) -> dict[str, str]:
    fields = {
        "notify_time": "2025-03-01 12:00:05",
        "notify_type": "trade_status_sync",
        "notify_id": "ac05099524730693a8b330c5ecf72da9786",
        "app_id": "2021000000000001",
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2025030122001400001234567890",
        "out_trade_no": "202503010000000001P01",
        "seller_id": "2088000000000001",
        "total_amount": "88.80",
        "receipt_amount": "88.80",
        "buyer_pay_amount": "88.80",
        "trade_status": "TRADE_SUCCESS",
        "gmt_create": "2025-03-01 11:59:30",
        "gmt_payment": "2025-03-01 12:00:04",
        "subject": SUBJECT,
        "fund_bill_list": "",
    }
    fields.update(overrides)
    return fields


def signed_body(fields: dict[str, str], private_pem: str, *, sign_type: str = "RSA2") -> bytes:
    """Sign like Alipay (sign and sign_type left out) and form-encode like an HTTP client."""
    signed = {**fields, "sign_type": sign_type}
    signed["sign"] = rsa_sign(private_pem, alipay_signing_string(signed))
    return urllib.parse.urlencode(signed).encode("ascii")


def parse(gateway: AlipayGateway, body: bytes):
    return gateway.parse_notify(body=body, headers={"Content-Type": "application/x-www-form-urlencoded"}, now=NOW)


# --- signing string ------------------------------------------------------------------


def test_signing_string_sorts_and_drops_sign_sign_type_and_empty_values():
    params = {"b": "2", "sign": "xyz", "a": "1", "sign_type": "RSA2", "c": "", "B": "upper", "subject": "a+b & 100%"}
    assert alipay_signing_string(params) == "B=upper&a=1&b=2&subject=a+b & 100%"


def test_request_signing_string_keeps_sign_type():
    params = {"method": "alipay.trade.query", "sign": "xyz", "sign_type": "RSA2", "app_id": "1"}
    assert alipay_signing_string(params, include_sign_type=True) == "app_id=1&method=alipay.trade.query&sign_type=RSA2"


# --- notify ------------------------------------------------------------------------------


def test_notify_with_chinese_plus_percent_and_ampersand_verifies(gateway, keys):
    body = signed_body(notify_fields(), keys["alipay"][0])
    assert b"%2B" in body and b"%25" in body and b"%26" in body  # encoded as a real client does

    message = parse(gateway, body)

    assert message.kind == "payment"
    assert message.succeeded is True
    assert message.dedupe_key == "ac05099524730693a8b330c5ecf72da9786"
    assert message.amount == Decimal("88.80")
    assert message.out_trade_no == "202503010000000001P01"
    assert message.gateway_trade_no == "2025030122001400001234567890"
    assert (message.merchant_id, message.app_id) == ("2088000000000001", "2021000000000001")
    assert message.occurred_at == datetime(2025, 3, 1, 12, 0, 4, tzinfo=SHANGHAI)
    assert message.fields["subject"] == SUBJECT


def test_notify_in_gbk_honours_its_charset(gateway, keys):
    fields = notify_fields(charset="gbk")
    signed = {**fields, "sign_type": "RSA2"}
    signed["sign"] = rsa_sign(keys["alipay"][0], alipay_signing_string(signed))
    body = urllib.parse.urlencode(signed, encoding="gbk").encode("ascii")

    assert parse(gateway, body).fields["subject"] == SUBJECT


def test_tampered_total_amount_fails(gateway, keys):
    body = signed_body(notify_fields(), keys["alipay"][0]).replace(b"total_amount=88.80", b"total_amount=0.01")
    with pytest.raises(VerificationError, match="bad signature"):
        parse(gateway, body)


def test_notify_signed_with_another_key_fails(gateway, keys):
    with pytest.raises(VerificationError, match="bad signature"):
        parse(gateway, signed_body(notify_fields(), keys["stranger"][0]))


def test_notify_signed_with_our_own_app_key_fails(gateway, keys):
    """The check is against Alipay's public key, never the merchant's own."""
    with pytest.raises(VerificationError):
        parse(gateway, signed_body(notify_fields(), keys["app"][0]))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f.pop("sign"), "missing sign"),
        (lambda f: f.update(sign="not base64!!"), "bad base64"),
        (lambda f: f.update(sign_type="RSA"), "sign_type must be RSA2"),
    ],
)
def test_notify_without_a_usable_signature_is_refused(gateway, keys, mutate, reason):
    fields = dict(
        urllib.parse.parse_qsl(signed_body(notify_fields(), keys["alipay"][0]).decode(), keep_blank_values=True)
    )
    mutate(fields)
    with pytest.raises(VerificationError, match=reason):
        parse(gateway, urllib.parse.urlencode(fields).encode())


@pytest.mark.parametrize("missing", ["notify_id", "out_trade_no"])
def test_notify_missing_ids_is_refused(gateway, keys, missing):
    fields = notify_fields()
    del fields[missing]
    with pytest.raises(VerificationError, match=f"missing {missing}"):
        parse(gateway, signed_body(fields, keys["alipay"][0]))


def test_notify_with_malformed_amount_is_refused(gateway, keys):
    with pytest.raises(VerificationError, match="malformed total_amount"):
        parse(gateway, signed_body(notify_fields(total_amount="88.8.0"), keys["alipay"][0]))


def test_repeated_field_is_refused(gateway, keys):
    body = signed_body(notify_fields(), keys["alipay"][0]) + b"&total_amount=0.01"
    with pytest.raises(VerificationError, match="duplicate field"):
        parse(gateway, body)


def test_trade_success_with_refund_fee_is_a_refund_notice(gateway, keys):
    fields = notify_fields(refund_fee="30.00", out_biz_no="RF202503010001", gmt_refund="2025-03-02 09:30:00.320")

    message = parse(gateway, signed_body(fields, keys["alipay"][0]))

    assert message.kind == "refund"
    assert message.succeeded is True
    assert message.amount == Decimal("30.00")
    assert message.out_refund_no == "RF202503010001"
    assert message.occurred_at == datetime(2025, 3, 2, 9, 30, 0, 320_000, tzinfo=SHANGHAI)


@pytest.mark.parametrize("status", ["WAIT_BUYER_PAY", "TRADE_CLOSED"])
def test_other_statuses_are_not_payments(gateway, keys, status):
    message = parse(gateway, signed_body(notify_fields(trade_status=status, gmt_payment=""), keys["alipay"][0]))
    assert message.kind == "other"
    assert message.succeeded is False


def test_trade_finished_is_paid(gateway, keys):
    message = parse(gateway, signed_body(notify_fields(trade_status="TRADE_FINISHED"), keys["alipay"][0]))
    assert (message.kind, message.succeeded) == ("payment", True)


def _bare(pem: str) -> str:
    """The key as Alipay's console shows it: the base64 body on one line, no armour."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def test_keys_load_in_every_console_format(keys):
    private_pkcs8, public_spki = keys["alipay"]
    private_pkcs1 = (
        load_private_key(private_pkcs8)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        .decode()
    )
    assert "BEGIN RSA PRIVATE KEY" in private_pkcs1
    for private in (private_pkcs8, private_pkcs1, _bare(private_pkcs8), _bare(private_pkcs1)):
        for public in (public_spki, _bare(public_spki)):
            rsa_verify(public, "a=1&b=2", rsa_sign(private, "a=1&b=2"))
    with pytest.raises(CryptoError):
        load_private_key("not a key")


def test_gateway_accepts_bare_base64_keys(gateway, keys):
    bare = AlipayGateway(AlipayConfig(**{**gateway.config.__dict__, "alipay_public_key_pem": _bare(keys["alipay"][1])}))
    assert parse(bare, signed_body(notify_fields(), keys["alipay"][0])).succeeded


# --- page pay ----------------------------------------------------------------------------


def test_page_pay_url_is_signed_and_expires_no_later_than_the_deadline(gateway, keys):
    deadline = datetime(2025, 3, 1, 4, 30, 59, 999_999, tzinfo=ZoneInfo("UTC"))

    request = gateway.build_pay(out_trade_no="T1", amount=Decimal("198.00"), subject=SUBJECT, expires_at=deadline)

    url = urllib.parse.urlsplit(request.pay_url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == gateway.config.gateway_url
    params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
    rsa_verify(keys["app"][1], alipay_signing_string(params, include_sign_type=True), params["sign"])
    assert params["method"] == "alipay.trade.page.pay"
    assert (params["format"], params["charset"], params["sign_type"], params["version"]) == (
        "JSON",
        "utf-8",
        "RSA2",
        "1.0",
    )
    assert params["notify_url"] == gateway.config.notify_url
    datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S")
    biz = json.loads(params["biz_content"])
    assert biz == {
        "out_trade_no": "T1",
        "total_amount": "198.00",
        "subject": "春季新品 T恤+短裤 100% 纯棉 ＆ 包邮",  # Alipay refuses / = & in a subject
        "product_code": "FAST_INSTANT_TRADE_PAY",
        "time_expire": "2025-03-01 12:30:59",
    }
    expire = datetime.strptime(biz["time_expire"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
    assert expire <= deadline


def test_page_pay_refuses_amounts_that_would_need_rounding(gateway):
    with pytest.raises(ValueError):
        gateway.build_pay(out_trade_no="T1", amount=Decimal("1.005"), subject="x", expires_at=NOW)


def test_response_node_is_cut_out_verbatim():
    text = '{"alipay_trade_query_response":{"code":"10000","msg":"Success","subject":"a\\"}b"} ,"sign":"abc"}'
    members = top_level_members(text)
    start, end, _value = members["alipay_trade_query_response"]
    assert text[start:end] == '{"code":"10000","msg":"Success","subject":"a\\"}b"}'
    assert members["sign"][2] == "abc"


# --- against the sandbox gateway (real HTTP) -------------------------------------------------


def open_page_pay(out_trade_no: str, amount: str = "88.80", minutes: int = 30) -> requests.Response:
    """What the customer's browser does with the pay URL: the sandbox opens the trade and redirects."""
    pay = get_gateway("alipay").build_pay(
        out_trade_no=out_trade_no,
        amount=Decimal(amount),
        subject=SUBJECT,
        expires_at=timezone.now() + timedelta(minutes=minutes),
    )
    return requests.get(pay.pay_url, allow_redirects=False, timeout=10)


def test_page_pay_opens_the_trade_and_redirects_to_the_cashier(live_sandbox):
    response = open_page_pay("ALI-OPEN-1")

    assert response.status_code == 302
    assert response.headers["Location"] == "/payments/sandbox/pay/ALI-OPEN-1/?channel=alipay"
    trade = SandboxTrade.objects.get(channel="alipay", out_trade_no="ALI-OPEN-1")
    assert (trade.amount, trade.subject, trade.status) == (Decimal("88.80"), alipay_subject(SUBJECT), "WAIT_BUYER_PAY")
    assert trade.time_expire <= timezone.now() + timedelta(minutes=30)
    cashier = requests.get(live_sandbox.url + response.headers["Location"], timeout=10)
    assert cashier.status_code == 200 and "支付" in cashier.text


def test_same_out_trade_no_with_another_amount_is_refused(live_sandbox):
    assert open_page_pay("ALI-OPEN-2", "10.00").status_code == 302
    assert open_page_pay("ALI-OPEN-2", "10.00").status_code == 302  # same contents: the same trade

    refused = open_page_pay("ALI-OPEN-2", "9.99")

    assert refused.status_code == 400
    assert "ACQ.CONTEXT_INCONSISTENT" in refused.text
    assert SandboxTrade.objects.get(out_trade_no="ALI-OPEN-2").amount == Decimal("10.00")


def test_query_and_close_an_unpaid_trade(live_sandbox):
    gateway = get_gateway("alipay")
    assert gateway.query(out_trade_no="ALI-NEVER").exists is False

    open_page_pay("ALI-CLOSE-1")
    state = gateway.query(out_trade_no="ALI-CLOSE-1")
    assert (state.exists, state.paid, state.closed, state.raw_state) == (True, False, False, "WAIT_BUYER_PAY")
    assert state.amount == Decimal("88.80")

    assert gateway.close(out_trade_no="ALI-CLOSE-1").closed is True
    again = gateway.close(out_trade_no="ALI-CLOSE-1")  # ACQ.TRADE_STATUS_ERROR on a closed trade
    assert (again.closed, again.already_paid) == (True, False)
    assert gateway.close(out_trade_no="ALI-NEVER").closed is True  # nothing to close
    assert gateway.query(out_trade_no="ALI-CLOSE-1").closed is True


def test_close_of_a_paid_trade_answers_trade_has_success(live_sandbox):
    gateway = get_gateway("alipay")
    open_page_pay("ALI-PAID-1")
    trade = sandbox_pay(channel="alipay", out_trade_no="ALI-PAID-1")

    result = gateway.close(out_trade_no="ALI-PAID-1")

    assert (result.closed, result.already_paid) == (False, True)
    state = gateway.query(out_trade_no="ALI-PAID-1")
    assert (state.paid, state.closed, state.amount) == (True, False, Decimal("88.80"))
    assert state.gateway_trade_no == trade.trade_no
    assert state.paid_at is not None and abs(state.paid_at - trade.paid_at) < timedelta(seconds=1)
    assert (state.merchant_id, state.app_id) == (gateway.merchant_id, gateway.app_id)


def test_refund_is_idempotent_on_out_request_no(live_sandbox, queued_deliveries):
    gateway = get_gateway("alipay")
    open_page_pay("ALI-REFUND-1", "100.00")
    trade = sandbox_pay(channel="alipay", out_trade_no="ALI-REFUND-1")
    args = {"out_trade_no": "ALI-REFUND-1", "amount": Decimal("30.00"), "total": Decimal("100.00"), "reason": "退货"}

    first = gateway.refund(out_refund_no="RF-1", **args)
    second = gateway.refund(out_refund_no="RF-1", **args)

    assert first.status == second.status == "succeeded"
    assert first.gateway_refund_no == second.gateway_refund_no == trade.trade_no
    assert SandboxRefund.objects.filter(out_refund_no="RF-1").count() == 1
    refund_notifies = SandboxNotify.objects.filter(trade=trade, event="REFUND")
    assert refund_notifies.count() == 1
    assert refund_notifies[0].pk in [notify_id for notify_id, _countdown in queued_deliveries]

    notice = gateway.parse_notify(body=refund_notifies[0].body.encode(), headers={}, now=timezone.now())
    assert (notice.kind, notice.out_refund_no, notice.amount, notice.succeeded) == (
        "refund",
        "RF-1",
        Decimal("30.00"),
        True,
    )


def test_refund_beyond_the_trade_amount_fails(live_sandbox):
    gateway = get_gateway("alipay")
    open_page_pay("ALI-REFUND-2", "50.00")
    sandbox_pay(channel="alipay", out_trade_no="ALI-REFUND-2")
    args = {"out_trade_no": "ALI-REFUND-2", "total": Decimal("50.00"), "reason": ""}

    assert gateway.refund(out_refund_no="RF-2A", amount=Decimal("40.00"), **args).status == "succeeded"
    over = gateway.refund(out_refund_no="RF-2B", amount=Decimal("10.01"), **args)

    assert over.status == "failed"
    assert over.error.startswith("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    unknown = gateway.refund(out_refund_no="RF-2C", amount=Decimal("1.00"), **{**args, "out_trade_no": "ALI-NONE"})
    assert unknown.status == "failed" and unknown.error.startswith("ACQ.TRADE_NOT_EXIST")


def test_answer_signed_with_another_key_is_not_trusted(live_sandbox, keys):
    real = get_gateway("alipay").config
    fooled = AlipayGateway(
        AlipayConfig(**{**real.__dict__, "alipay_public_key_pem": keys["stranger"][1]})  # not the platform key
    )
    with pytest.raises(GatewayError) as error:
        fooled.query(out_trade_no="ALI-NEVER")
    assert error.value.code == "invalid_response_signature"


def test_request_signed_with_the_wrong_key_is_refused_by_the_gateway(live_sandbox, keys):
    real = get_gateway("alipay").config
    wrong = AlipayGateway(AlipayConfig(**{**real.__dict__, "merchant_private_key_pem": keys["stranger"][0]}))
    with pytest.raises(GatewayError) as error:
        wrong.query(out_trade_no="ALI-NEVER")
    assert error.value.code == "isv.invalid-signature"
    assert error.value.retryable is False


def test_network_failure_is_retryable(gateway):
    unreachable = AlipayGateway(AlipayConfig(**{**gateway.config.__dict__, "gateway_url": "http://127.0.0.1:9/gw"}))
    with pytest.raises(GatewayError) as error:
        unreachable.refund(
            out_trade_no="X", out_refund_no="R", amount=Decimal("1.00"), total=Decimal("1.00"), reason=""
        )
    assert error.value.retryable is True


def test_sandbox_keys_sign_what_the_adapter_verifies(sandbox_settings):
    """get_gateway() in sandbox mode trusts exactly the sandbox's platform key."""
    gateway = get_gateway("alipay")
    material = sandbox_keys()
    assert gateway.config.alipay_public_key_pem == material.alipay_platform_public_pem
    assert gateway.config.app_id == "9021000000000001" and gateway.merchant_id == "2088000000000001"


def test_a_key_file_is_read_again_when_it_changes(tmp_path, settings, keys):
    """get_gateway runs for every notify, so a settled key file is read once and then only
    stat'ed; a key rotated in place (same path, same size), or a file changed within the last
    two seconds, is read again."""
    old_public, new_public = keys["alipay"][1], keys["stranger"][1]
    assert len(old_public) == len(new_public)
    public = tmp_path / "alipay_public.pem"
    private = tmp_path / "app_private.pem"
    private.write_text(keys["app"][0])
    settings.ALIPAY_APP_ID, settings.ALIPAY_SELLER_ID = "2021000000000001", "2088000000000001"
    settings.ALIPAY_GATEWAY_URL = "http://127.0.0.1:9/gateway.do"
    settings.ALIPAY_PUBLIC_KEY_PATH, settings.ALIPAY_PRIVATE_KEY_PATH = str(public), str(private)
    an_hour_ago = time.time_ns() - 3_600_000_000_000

    public.write_text(old_public)
    assert get_gateway("alipay").config.alipay_public_key_pem == old_public  # just written: not kept
    assert str(public) not in gateways._key_files
    os.utime(public, ns=(an_hour_ago, an_hour_ago))
    assert get_gateway("alipay").config.alipay_public_key_pem == old_public
    assert gateways._key_files[str(public)][1] == old_public  # settled: kept

    public.write_text(new_public)  # rotated in place: same inode, same size, a new mtime
    os.utime(public, ns=(an_hour_ago + 1_000, an_hour_ago + 1_000))
    assert get_gateway("alipay").config.alipay_public_key_pem == new_public
    public.unlink()
    with pytest.raises(Exception, match="cannot read"):
        get_gateway("alipay")
