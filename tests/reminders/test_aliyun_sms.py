"""The Aliyun SMS adapter against a local fake Dysmsapi that checks the real signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import urllib.parse
from datetime import UTC, datetime

import pytest

from reminders.channels import ChannelError
from reminders.conf import AliyunSmsConfig
from reminders.models import Reminder
from reminders.services import reminders_send_due
from reminders.sms import AliyunSmsProvider, aliyun_signature

from .conftest import at

SECRET = "fake-secret-值"


def test_signature_matches_the_documented_example():
    """The SendSms example of Aliyun's 签名机制 page (GET, AccessKeySecret testSecret)."""
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert aliyun_signature(method="GET", params=params, secret="testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def pop_encode(value: str) -> str:
    """Written here from the documentation (not imported), so the server checks the client independently."""
    return urllib.parse.quote(value, safe="").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


class FakeDysmsapi(http.server.BaseHTTPRequestHandler):
    answers: list[tuple[int, dict]] = []
    received: list[dict[str, str]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        params = dict(urllib.parse.parse_qsl(body, keep_blank_values=True, strict_parsing=True))
        self.received.append(params)
        status, answer = self.check(params)
        if status == 200 and self.answers:
            status, answer = self.answers.pop(0)
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def check(self, params: dict[str, str]) -> tuple[int, dict]:
        signature = params.pop("Signature", "")
        canonical = "&".join(f"{pop_encode(k)}={pop_encode(v)}" for k, v in sorted(params.items()))
        string_to_sign = f"POST&%2F&{pop_encode(canonical)}"
        expected = base64.b64encode(
            hmac.new(f"{SECRET}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
        ).decode()
        if signature != expected:
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched"}
        if params.get("AccessKeyId") != "LTAI-test":
            return 404, {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found."}
        timestamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if abs((datetime.now(UTC) - timestamp).total_seconds()) > 900:
            return 400, {"Code": "InvalidTimeStamp.Expired", "Message": "expired"}
        fixed = {
            "Action": "SendSms",
            "Version": "2017-05-25",
            "Format": "JSON",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "RegionId": "cn-hangzhou",
        }
        if any(params.get(k) != v for k, v in fixed.items()) or not params.get("SignatureNonce"):
            return 400, {"Code": "MissingParameter", "Message": "bad common parameters"}
        return 200, {
            "Code": "OK",
            "Message": "OK",
            "RequestId": "req-1",
            "BizId": f"900619746936498440^{len(self.received)}",
        }

    def log_message(self, *args):
        pass


@pytest.fixture
def dysmsapi():
    FakeDysmsapi.answers, FakeDysmsapi.received = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeDysmsapi)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", FakeDysmsapi
    server.shutdown()
    server.server_close()


def provider(endpoint: str, *, secret: str = SECRET) -> AliyunSmsProvider:
    config = AliyunSmsConfig(
        access_key_id="LTAI-test",
        access_key_secret=secret,
        sign_name="某某商城",
        template_code="SMS_100000001",
        endpoint=endpoint,
        region_id="cn-hangzhou",
    )
    return AliyunSmsProvider(config, timeout=5)


def send(sms_provider: AliyunSmsProvider, **overrides) -> str:
    args = {
        "mobile": "13800138000",
        "text": "您好，订单 2026031000001 还未付款",
        "params": {"order_no": "2026031000001", "goods": "T恤 L码×3 & 袜子", "amount": "210.00"},
        "template_code": "",
        "reference": "R1",
    } | overrides
    return sms_provider.send(**args)


def test_send_is_signed_and_returns_the_biz_id(dysmsapi):
    endpoint, server = dysmsapi
    assert send(provider(endpoint)) == "900619746936498440^1"
    [request] = server.received
    assert request["PhoneNumbers"] == "13800138000"
    assert request["SignName"] == "某某商城"
    assert request["TemplateCode"] == "SMS_100000001"
    assert request["OutId"] == "R1"
    assert json.loads(request["TemplateParam"])["goods"] == "T恤 L码×3 & 袜子"


def test_a_rule_can_name_its_own_template(dysmsapi):
    endpoint, server = dysmsapi
    send(provider(endpoint), template_code="SMS_200000002")
    assert server.received[0]["TemplateCode"] == "SMS_200000002"


def test_wrong_secret_is_refused_by_the_server_and_not_retried(dysmsapi):
    endpoint, _ = dysmsapi
    with pytest.raises(ChannelError) as err:
        send(provider(endpoint, secret="wrong"))
    assert (err.value.code, err.value.retryable) == ("SignatureDoesNotMatch", False)


@pytest.mark.parametrize(
    ("answer", "code", "retryable"),
    [
        ((200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号"}), "isv.MOBILE_NUMBER_ILLEGAL", False),
        (
            (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控"}),
            "isv.BUSINESS_LIMIT_CONTROL",
            True,
        ),
        ((503, {"Code": "ServiceUnavailable", "Message": "busy"}), "ServiceUnavailable", True),
    ],
)
def test_error_codes(dysmsapi, answer, code, retryable):
    endpoint, server = dysmsapi
    server.answers = [answer]
    with pytest.raises(ChannelError) as err:
        send(provider(endpoint))
    assert (err.value.code, err.value.retryable) == (code, retryable)


def test_unreachable_endpoint_is_retryable():
    with pytest.raises(ChannelError) as err:
        send(provider("http://127.0.0.1:9"))
    assert (err.value.code, err.value.retryable) == ("connection", True)


def test_not_configured_fails_without_a_request():
    sms_provider = AliyunSmsProvider(AliyunSmsConfig("", "", "", "", "http://127.0.0.1:9", "cn-hangzhou"))
    with pytest.raises(ChannelError) as err:
        send(sms_provider)
    assert (err.value.code, err.value.retryable) == ("not_configured", False)


@pytest.mark.django_db
def test_reminders_go_out_through_aliyun_when_configured(dysmsapi, settings, rules, only_rules, clock, make_order):
    endpoint, server = dysmsapi
    settings.OMS_SMS_PROVIDER = "aliyun"
    settings.ALIYUN_SMS_ACCESS_KEY_ID = "LTAI-test"
    settings.ALIYUN_SMS_ACCESS_KEY_SECRET = SECRET
    settings.ALIYUN_SMS_SIGN_NAME = "某某商城"
    settings.ALIYUN_SMS_TEMPLATE_CODE = "SMS_100000001"
    settings.ALIYUN_SMS_ENDPOINT = endpoint
    only_rules("order_confirmation")
    clock(at(3, 10, 10, 0))
    order = make_order()
    assert reminders_send_due().sent == 1
    reminder = Reminder.objects.get(order=order)
    assert reminder.provider_message_id == "900619746936498440^1"
    params = json.loads(server.received[0]["TemplateParam"])
    assert params["order_no"] == order.order_no and params["amount"] == "210.00"
    assert server.received[0]["OutId"] == f"R{reminder.pk}"
