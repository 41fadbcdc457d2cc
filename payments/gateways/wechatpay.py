"""WeChat Pay APIv3 (微信支付) adapter: Native pay, query and close by out_trade_no, refunds, notifies.

Wire rules this module relies on (WeChat Pay APIv3 documentation):

- Every request carries `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=..,nonce_str=..,signature=..,
  timestamp=..,serial_no=..`, the signature being SHA256withRSA with the merchant key over
  `"{METHOD}\\n{path?query}\\n{timestamp}\\n{nonce}\\n{body}\\n"`.
- Every answer and every notify is signed by the platform: headers Wechatpay-Timestamp, -Nonce,
  -Signature, -Serial over `"{timestamp}\\n{nonce}\\n{body}\\n"`. We check it with the platform
  public key the serial names, and refuse timestamps more than five minutes off.
- A notify's `resource` is AEAD_AES_256_GCM under the APIv3 key (ciphertext and tag, base64).
- Amounts on the wire are integer fen. This module is the only place fen exist; everything it
  returns is Decimal yuan with two places.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from django.utils import timezone

from .base import CloseResult, GatewayError, NotifyMessage, PayRequest, RefundResult, TradeState, VerificationError
from .crypto import CryptoError, aes_gcm_decrypt, random_nonce, rsa_sign, rsa_verify

SHANGHAI = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
MAX_CLOCK_SKEW_SECONDS = 300
PAID_STATES = frozenset({"SUCCESS", "REFUND"})  # REFUND: paid, then (partly) refunded
CLOSED_STATES = frozenset({"CLOSED", "REVOKED", "PAYERROR"})
RETRYABLE_CODES = frozenset({"SYSTEM_ERROR", "FREQUENCY_LIMITED", "BANK_ERROR", "SYSTEMERROR"})
DESCRIPTION_MAX_CHARS = 127


@dataclass(frozen=True)
class WechatPayConfig:
    """One WeChat Pay merchant (platform-public-key mode). Secrets are kept out of repr()."""

    mchid: str
    appid: str
    apiv3_key: str = field(repr=False)
    platform_public_key_pem: str = field(repr=False)
    platform_public_key_id: str
    merchant_private_key_pem: str = field(repr=False)
    merchant_cert_serial: str
    api_base: str
    notify_url: str


def yuan_to_fen(amount: Decimal) -> int:
    """Positive Decimal yuan with at most two places to integer fen. Never rounds (ValueError)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError("amount must be a finite Decimal")
    if amount.quantize(CENT) != amount or amount <= 0:
        raise ValueError(f"amount must be positive with at most 2 places: {amount}")
    return int(amount * 100)


def fen_to_yuan(fen: object) -> Decimal:
    """Integer fen (as JSON gives it) to Decimal yuan with two places, exactly. Raises ValueError."""
    if isinstance(fen, bool) or not isinstance(fen, int) or fen < 0:
        raise ValueError(f"fen must be a non-negative integer, not {fen!r}")
    return (Decimal(fen) / 100).quantize(CENT)


def rfc3339(moment: datetime) -> str:
    """`2025-01-01T12:00:00+08:00`, truncated (never rounded up) to the second."""
    if timezone.is_naive(moment):
        raise ValueError("aware datetime required")
    return moment.astimezone(SHANGHAI).replace(microsecond=0).isoformat()


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp with an offset to an aware datetime. Raises ValueError if it has none."""
    moment = datetime.fromisoformat(text.strip())
    if timezone.is_naive(moment):
        raise ValueError(f"timestamp without offset: {text!r}")
    return moment


def signing_message(*parts: str | bytes) -> bytes:
    """Each part followed by a newline, as both request and answer signatures want it."""
    return b"".join((part.encode("utf-8") if isinstance(part, str) else part) + b"\n" for part in parts)


def authorization_header(
    *, mchid: str, serial_no: str, private_key_pem: str, method: str, path: str, body: str, timestamp: int, nonce: str
) -> str:
    """The `Authorization` value for one request. `path` is the URL path plus `?query`, no host."""
    signature = rsa_sign(private_key_pem, signing_message(method, path, str(timestamp), nonce, body))
    return (
        f'{SIGNATURE_TYPE} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def platform_signature_problem(
    *, headers: Mapping[str, str], body: bytes, now: datetime, public_key_pem: str, public_key_id: str
) -> str:
    """Why a platform-signed message (answer or notify) must be refused, or "" when it checks out."""
    lowered = {key.lower(): value for key, value in headers.items()}
    timestamp = lowered.get("wechatpay-timestamp", "")
    nonce = lowered.get("wechatpay-nonce", "")
    signature = lowered.get("wechatpay-signature", "")
    serial = lowered.get("wechatpay-serial", "")
    for name, value in (("Timestamp", timestamp), ("Nonce", nonce), ("Signature", signature), ("Serial", serial)):
        if not value:
            return f"missing Wechatpay-{name}"
    signature_type = lowered.get("wechatpay-signature-type", SIGNATURE_TYPE)
    if signature_type != SIGNATURE_TYPE:
        return "unsupported Wechatpay-Signature-Type"
    if serial != public_key_id:
        return "unknown Wechatpay-Serial"
    if not timestamp.isdigit():
        return "malformed Wechatpay-Timestamp"
    if abs(now.timestamp() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        return "Wechatpay-Timestamp outside the 5 minute window"
    try:
        rsa_verify(public_key_pem, signing_message(timestamp, nonce, body), signature)
    except CryptoError as exc:
        return exc.reason
    return ""


class WechatPayGateway:
    """The WeChat Pay adapter. Pure protocol: no database, and every answer is verified before use."""

    channel = "wechatpay"

    def __init__(self, config: WechatPayConfig) -> None:
        self.config = config
        self.merchant_id = config.mchid
        self.app_id = config.appid

    # --- requests -----------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, query: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Send one signed call; return (HTTP status, verified JSON object or {} for an empty body).

        5xx and network failures raise GatewayError(retryable=True) before anything is trusted.
        """
        body_text = json.dumps(dict(body), ensure_ascii=False, separators=(",", ":")) if body is not None else ""
        url = self.config.api_base.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        split = urllib.parse.urlsplit(url)
        signed_path = split.path + (f"?{split.query}" if split.query else "")
        headers = {
            "Authorization": authorization_header(
                mchid=self.config.mchid,
                serial_no=self.config.merchant_cert_serial,
                private_key_pem=self.config.merchant_private_key_pem,
                method=method,
                path=signed_path,
                body=body_text,
                timestamp=int(timezone.now().timestamp()),
                nonce=random_nonce(32),
            ),
            "Accept": "application/json",
            "Wechatpay-Serial": self.config.platform_public_key_id,
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = requests.request(
                method,
                url,
                data=body_text.encode("utf-8") if body is not None else None,
                headers=headers,
                timeout=settings.GATEWAY_HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise GatewayError(
                f"wechatpay unreachable: {exc.__class__.__name__}", code="network", retryable=True
            ) from exc
        if response.status_code >= 500:
            raise GatewayError(
                f"wechatpay answered HTTP {response.status_code}", code=f"http_{response.status_code}", retryable=True
            )
        problem = platform_signature_problem(
            headers=response.headers,
            body=response.content,
            now=timezone.now(),
            public_key_pem=self.config.platform_public_key_pem,
            public_key_id=self.config.platform_public_key_id,
        )
        if problem:
            raise GatewayError(
                f"wechatpay answer not verifiable: {problem}", code="invalid_response_signature", retryable=False
            )
        if not response.content:
            return response.status_code, {}
        try:
            data = json.loads(response.content.decode("utf-8"))
        except ValueError as exc:
            raise GatewayError("wechatpay answered something that is not JSON", code="bad_response") from exc
        if not isinstance(data, dict):
            raise GatewayError("wechatpay answered something that is not a JSON object", code="bad_response")
        return response.status_code, data

    @staticmethod
    def _unexpected(status: int, data: Mapping[str, Any]) -> GatewayError:
        code = str(data.get("code", "")) or f"http_{status}"
        retryable = status == 429 or code in RETRYABLE_CODES
        return GatewayError(f"wechatpay {status} {code}: {data.get('message', '')}", code=code, retryable=retryable)

    def build_pay(self, *, out_trade_no: str, amount: Decimal, subject: str, expires_at: datetime) -> PayRequest:
        """Native (QR code) pay. `time_expire` is the deadline truncated to the second, never later."""
        body = {
            "appid": self.config.appid,
            "mchid": self.config.mchid,
            "description": subject[:DESCRIPTION_MAX_CHARS],
            "out_trade_no": out_trade_no,
            "time_expire": rfc3339(expires_at),
            "notify_url": self.config.notify_url,
            "amount": {"total": yuan_to_fen(amount), "currency": "CNY"},
        }
        status, data = self._request("POST", "/v3/pay/transactions/native", body)
        if status == 200 and isinstance(data.get("code_url"), str) and data["code_url"]:
            return PayRequest(code_url=data["code_url"])
        raise self._unexpected(status, data)

    def _trade_path(self, out_trade_no: str) -> str:
        return "/v3/pay/transactions/out-trade-no/" + urllib.parse.quote(out_trade_no, safe="")

    def query(self, *, out_trade_no: str) -> TradeState:
        """Query by out_trade_no. trade_state REFUND still means the money came in (paid=True)."""
        status, data = self._request("GET", self._trade_path(out_trade_no), query={"mchid": self.config.mchid})
        if status == 404 or data.get("code") == "ORDER_NOT_EXIST":
            return TradeState(exists=False)
        if status != 200:
            raise self._unexpected(status, data)
        state = str(data.get("trade_state", ""))
        paid = state in PAID_STATES
        try:
            amount_block = data.get("amount") or {}
            amount = fen_to_yuan(amount_block["total"]) if "total" in amount_block else None
            paid_at = parse_rfc3339(data["success_time"]) if paid and data.get("success_time") else None
        except (TypeError, ValueError) as exc:
            raise GatewayError(
                f"wechatpay query answer malformed: {exc}", code="bad_response", retryable=False
            ) from exc
        return TradeState(
            exists=True,
            paid=paid,
            closed=state in CLOSED_STATES,
            amount=amount,
            gateway_trade_no=str(data.get("transaction_id", "")),
            paid_at=paid_at,
            merchant_id=str(data.get("mchid", "")),
            app_id=str(data.get("appid", "")),
            raw_state=state,
        )

    def close(self, *, out_trade_no: str) -> CloseResult:
        """Close by out_trade_no: 204 closed; ORDERPAID means it was paid after all."""
        status, data = self._request("POST", self._trade_path(out_trade_no) + "/close", {"mchid": self.config.mchid})
        if status in (200, 204):
            return CloseResult(closed=True)
        code = data.get("code")
        if code == "ORDERPAID":
            return CloseResult(closed=False, already_paid=True)
        if code in ("ORDER_NOT_EXIST", "ORDER_CLOSED") or status == 404:
            return CloseResult(closed=True)
        raise self._unexpected(status, data)

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, amount: Decimal, total: Decimal, reason: str
    ) -> RefundResult:
        """Domestic refund, idempotent on out_refund_no. PROCESSING means a REFUND.* notify follows.

        A 4xx business refusal is a "failed" result carrying `code: message`; a 5xx, a 429 or a
        network failure raises GatewayError(retryable=True) because the outcome is unknown.
        """
        body: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "notify_url": self.config.notify_url,
            "amount": {"refund": yuan_to_fen(amount), "total": yuan_to_fen(total), "currency": "CNY"},
        }
        if reason:
            body["reason"] = reason[:80]
        status, data = self._request("POST", "/v3/refund/domestic/refunds", body)
        if status == 200:
            refund_status = str(data.get("status", ""))
            refund_id = str(data.get("refund_id", ""))
            if refund_status == "SUCCESS":
                return RefundResult("succeeded", gateway_refund_no=refund_id)
            if refund_status == "PROCESSING":
                return RefundResult("processing", gateway_refund_no=refund_id)
            if refund_status in ("CLOSED", "ABNORMAL"):
                return RefundResult("failed", gateway_refund_no=refund_id, error=refund_status)
            raise GatewayError(f"wechatpay refund status {refund_status!r}", code="bad_response", retryable=True)
        code = str(data.get("code", ""))
        if status == 401 or status == 429 or code in RETRYABLE_CODES:
            raise self._unexpected(status, data)
        return RefundResult("failed", error=f"{code or status}: {data.get('message', '')}"[:300])

    # --- notify -------------------------------------------------------------------

    def parse_notify(self, *, body: bytes, headers: Mapping[str, str], now: datetime) -> NotifyMessage:
        """Verify (headers, serial, 5-minute window, signature), decrypt `resource`, and say what it means.

        WeChat sends probes with bad signatures on purpose; they must end here as VerificationError.
        """
        problem = platform_signature_problem(
            headers=headers,
            body=body,
            now=now,
            public_key_pem=self.config.platform_public_key_pem,
            public_key_id=self.config.platform_public_key_id,
        )
        if problem:
            raise VerificationError(problem)
        try:
            envelope = json.loads(body.decode("utf-8"))
            resource = envelope["resource"]
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise VerificationError("unsupported resource algorithm")
            ciphertext, nonce = resource["ciphertext"], resource["nonce"]
            associated_data = resource.get("associated_data") or ""
            notification_id, event_type = str(envelope["id"]), str(envelope["event_type"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VerificationError("malformed notify body") from exc
        if not notification_id:
            raise VerificationError("missing id")
        try:
            plaintext = aes_gcm_decrypt(self.config.apiv3_key, nonce, ciphertext, associated_data)
            payload = json.loads(plaintext.decode("utf-8"))
        except CryptoError as exc:
            raise VerificationError(f"resource {exc.reason}") from exc
        except ValueError as exc:
            raise VerificationError("resource is not JSON") from exc
        if not isinstance(payload, dict):
            raise VerificationError("resource is not a JSON object")
        record = {
            "id": notification_id,
            "event_type": event_type,
            "create_time": envelope.get("create_time", ""),
            "summary": envelope.get("summary", ""),
            "resource": payload,
        }
        try:
            return self._message(notification_id, event_type, payload, record)
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(f"malformed resource: {exc}") from exc

    def _message(
        self, notification_id: str, event_type: str, payload: Mapping[str, Any], record: Mapping[str, Any]
    ) -> NotifyMessage:
        amount_block = payload.get("amount") or {}
        common = {
            "channel": self.channel,
            "dedupe_key": notification_id,
            "out_trade_no": str(payload["out_trade_no"]),
            "merchant_id": str(payload.get("mchid", "")),
            "app_id": str(payload.get("appid", "")),  # refund notices carry no appid
            "fields": record,
        }
        success_time = payload.get("success_time")
        occurred_at = parse_rfc3339(success_time) if success_time else None
        if event_type == "TRANSACTION.SUCCESS":
            return NotifyMessage(
                kind="payment",
                gateway_trade_no=str(payload.get("transaction_id", "")),
                amount=fen_to_yuan(amount_block["total"]),
                succeeded=payload.get("trade_state") == "SUCCESS",
                occurred_at=occurred_at,
                **common,
            )
        if event_type.startswith("REFUND."):
            return NotifyMessage(
                kind="refund",
                gateway_trade_no=str(payload.get("refund_id", "")),
                amount=fen_to_yuan(amount_block["refund"]),
                succeeded=payload.get("refund_status") == "SUCCESS",
                occurred_at=occurred_at,
                out_refund_no=str(payload["out_refund_no"]),
                **common,
            )
        return NotifyMessage(
            kind="other",
            gateway_trade_no=str(payload.get("transaction_id", "")),
            amount=fen_to_yuan(amount_block["total"]) if "total" in amount_block else Decimal("0.00"),
            succeeded=False,
            occurred_at=occurred_at,
            **common,
        )
