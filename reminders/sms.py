"""SMS providers: one method, `send(...) -> provider message id`, raising ChannelError.

`OMS_SMS_PROVIDER` picks one: "logging" (the default: writes the text to the log and sends
nothing), "aliyun", or the dotted path of a class with the same `send` signature.

Aliyun (Dysmsapi SendSms, RPC style, signature version 1.0): the request carries the common
parameters and the SendSms parameters; the signature is HMAC-SHA1, keyed with
"AccessKeySecret&", over "POST&%2F&" + percent-encode(the sorted, percent-encoded
"key=value" pairs joined by "&"), base64-encoded. Percent-encoding is RFC 3986: only
A-Z a-z 0-9 - _ . ~ stay as they are, a space becomes %20 (not "+").
An Aliyun template holds the approved text; we send the rule's variables as TemplateParam
(see rendering.TEMPLATE_VARIABLES), so the approved template should use the same names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from django.utils.module_loading import import_string

from . import conf
from .channels import ChannelError

logger = logging.getLogger(__name__)


class SmsProvider(Protocol):
    def send(self, *, mobile: str, text: str, params: Mapping[str, str], template_code: str, reference: str) -> str: ...


class LoggingSmsProvider:
    """Development default: the message goes to the log, nowhere else."""

    def send(self, *, mobile: str, text: str, params: Mapping[str, str], template_code: str, reference: str) -> str:
        logger.info("SMS (logging provider, not sent) to %s [%s]: %s", mobile, reference, text)
        return f"log-{uuid.uuid4().hex}"


def percent_encode(value: str) -> str:
    return urllib.parse.quote(str(value), safe="~")


def aliyun_signature(*, method: str, params: Mapping[str, str], secret: str) -> str:
    """Aliyun RPC signature (SignatureMethod HMAC-SHA1, SignatureVersion 1.0)."""
    canonical = "&".join(
        f"{percent_encode(key)}={percent_encode(value)}" for key, value in sorted(params.items()) if key != "Signature"
    )
    string_to_sign = f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# Error codes worth another try later: throttling, flow control and the provider's own faults.
ALIYUN_RETRYABLE_CODES = {
    "isv.BUSINESS_LIMIT_CONTROL",
    "isv.DAY_LIMIT_CONTROL",
    "Throttling",
    "Throttling.User",
    "Throttling.Api",
    "ServiceUnavailable",
    "InternalError",
    "isp.SYSTEM_ERROR",
}


class AliyunSmsProvider:
    action = "SendSms"
    version = "2017-05-25"

    def __init__(self, config: conf.AliyunSmsConfig | None = None, *, timeout: float | None = None) -> None:
        self.config = config or conf.aliyun_sms()
        self.timeout = conf.sms_http_timeout() if timeout is None else timeout

    def request_params(
        self, *, mobile: str, params: Mapping[str, str], template_code: str, reference: str
    ) -> dict[str, str]:
        cfg = self.config
        query = {
            "AccessKeyId": cfg.access_key_id,
            "Action": self.action,
            "Format": "JSON",
            "RegionId": cfg.region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": self.version,
            "PhoneNumbers": mobile,
            "SignName": cfg.sign_name,
            "TemplateCode": template_code or cfg.template_code,
            "TemplateParam": json.dumps(dict(params), ensure_ascii=False, separators=(",", ":")),
            "OutId": reference,
        }
        query["Signature"] = aliyun_signature(method="POST", params=query, secret=cfg.access_key_secret)
        return query

    def send(self, *, mobile: str, text: str, params: Mapping[str, str], template_code: str, reference: str) -> str:
        cfg = self.config
        if not (cfg.access_key_id and cfg.access_key_secret and cfg.sign_name and (template_code or cfg.template_code)):
            raise ChannelError("阿里云短信未配置（ALIYUN_SMS_*）", code="not_configured", retryable=False)
        query = self.request_params(mobile=mobile, params=params, template_code=template_code, reference=reference)
        body = "&".join(f"{percent_encode(key)}={percent_encode(value)}" for key, value in query.items())
        request = urllib.request.Request(
            cfg.endpoint.rstrip("/") + "/",
            data=body.encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except urllib.error.URLError as err:  # the request never reached Aliyun
            raise ChannelError(f"无法连接阿里云短信：{err.reason}", code="connection") from err
        except OSError as err:  # sent, but no answer: it may have gone out, so no blind retry
            raise ChannelError(f"阿里云短信无应答，发送结果未知：{err}", code="no_response", retryable=False) from err
        return self._message_id(status=status, raw=raw)

    @staticmethod
    def _message_id(*, status: int, raw: bytes) -> str:
        try:
            answer = json.loads(raw)
        except ValueError:
            raise ChannelError(
                f"阿里云短信返回无法解析（HTTP {status}）", code=f"http_{status}", retryable=status >= 500
            ) from None
        code = str(answer.get("Code", ""))
        if code == "OK":
            return str(answer.get("BizId") or answer.get("RequestId") or "")
        retryable = code in ALIYUN_RETRYABLE_CODES or code.startswith("Throttling") or status >= 500
        raise ChannelError(f"阿里云短信：{code} {answer.get('Message', '')}".strip(), code=code, retryable=retryable)


PROVIDERS = {"logging": LoggingSmsProvider, "aliyun": AliyunSmsProvider}


def sms_provider() -> SmsProvider:
    name = conf.sms_provider_name()
    provider_class = PROVIDERS.get(name) or import_string(name)
    return provider_class()
