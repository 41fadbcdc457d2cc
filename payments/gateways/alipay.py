"""Alipay (支付宝) OpenAPI adapter: computer-site page pay, query, close and refund, plus the async notify.

Wire rules this module relies on (Alipay open platform documentation):

- Requests are form fields signed RSA2 (SHA256withRSA) with our app private key. The signed
  string is every non-empty parameter except `sign`, sorted by key, joined `k=v&...` with
  decoded values. For requests `sign_type` takes part; for async notifies it does not.
- An async notify is checked against **Alipay's** public key, with `sign` and `sign_type` left out.
- A synchronous answer looks like `{"alipay_trade_query_response": {...}, "sign": "..."}`; the
  signature covers the exact text of the `..._response` node as sent, so we cut it out of the
  body instead of re-serialising it.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from django.utils import timezone

from .base import CloseResult, GatewayError, NotifyMessage, PayRequest, RefundResult, TradeState, VerificationError
from .crypto import CryptoError, rsa_sign, rsa_verify

SHANGHAI = ZoneInfo("Asia/Shanghai")
ALIPAY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CENT = Decimal("0.01")
PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
SUCCESS_CODE = "10000"
_AMOUNT_RE = re.compile(r"^\d{1,10}(\.\d{1,2})?$")
_JSON_WS = re.compile(r"[ \t\n\r]*")
_SUBJECT_FORBIDDEN = str.maketrans({"/": "／", "=": "＝", "&": "＆"})
SUBJECT_MAX_CHARS = 256


@dataclass(frozen=True)
class AlipayConfig:
    """One Alipay app. Keys are PEM or bare base64 text; they are kept out of repr()."""

    app_id: str
    seller_id: str
    gateway_url: str
    alipay_public_key_pem: str = field(repr=False)
    merchant_private_key_pem: str = field(repr=False)
    notify_url: str


def alipay_signing_string(params: Mapping[str, str], *, include_sign_type: bool = False) -> str:
    """The string Alipay signs: drop `sign` (and `sign_type`, unless asked), drop empty values,
    sort keys by ASCII, join `k=v` with `&`, values decoded (never URL-encoded).

    Notifies exclude `sign_type`; our own API requests must pass `include_sign_type=True`.
    """
    excluded = {"sign"} if include_sign_type else {"sign", "sign_type"}
    items = sorted((k, v) for k, v in params.items() if k not in excluded and v is not None and v != "")
    return "&".join(f"{k}={v}" for k, v in items)


def alipay_time(moment: datetime) -> str:
    """`YYYY-MM-DD HH:MM:SS` in Beijing time, truncated (never rounded up) to the second."""
    if timezone.is_naive(moment):
        raise ValueError("aware datetime required")
    return moment.astimezone(SHANGHAI).replace(microsecond=0).strftime(ALIPAY_TIME_FORMAT)


def parse_alipay_time(text: str) -> datetime:
    """A Beijing wall-clock string (`2015-04-28 15:45:57`, or with milliseconds as in `gmt_refund`)
    to an aware datetime. Raises ValueError."""
    text = text.strip()
    layout = ALIPAY_TIME_FORMAT + ".%f" if "." in text else ALIPAY_TIME_FORMAT
    return datetime.strptime(text, layout).replace(tzinfo=SHANGHAI)


def alipay_subject(text: str) -> str:
    """A trade title Alipay accepts: it refuses `/`, `=` and `&` in `subject`, so those become their
    full-width forms (still readable to the buyer), and the title is cut to 256 characters."""
    return text.translate(_SUBJECT_FORBIDDEN).strip()[:SUBJECT_MAX_CHARS]


def format_amount(amount: Decimal) -> str:
    """Yuan with exactly two places. Refuses (ValueError) anything that would need rounding."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError("amount must be a finite Decimal")
    quantized = amount.quantize(CENT)
    if quantized != amount or quantized <= 0:
        raise ValueError(f"amount must be positive with at most 2 places: {amount}")
    return f"{quantized:.2f}"


def parse_amount(text: str) -> Decimal:
    """Alipay amount text (`"88.8"`, `"180.00"`) to a 2-place Decimal. Raises ValueError."""
    text = text.strip()
    if not _AMOUNT_RE.match(text):
        raise ValueError(f"malformed amount {text!r}")
    try:
        return Decimal(text).quantize(CENT)
    except InvalidOperation as exc:
        raise ValueError(f"malformed amount {text!r}") from exc


def parse_form_body(body: bytes) -> dict[str, str]:
    """Decode `application/x-www-form-urlencoded` bytes the way Alipay encodes them.

    Values are percent-decoded as bytes first and only then decoded with the body's own
    `charset` field (utf-8 when absent), so a GBK notify reads correctly. Blank values are
    kept (they are simply left out of the signed string); a repeated key is refused because
    two readers could disagree on which value was signed.
    """
    pairs: list[tuple[bytes, bytes]] = []
    for part in body.strip().split(b"&"):
        if not part:
            continue
        raw_key, _, raw_value = part.partition(b"=")
        pairs.append(
            (
                urllib.parse.unquote_to_bytes(raw_key.replace(b"+", b" ")),
                urllib.parse.unquote_to_bytes(raw_value.replace(b"+", b" ")),
            )
        )
    charset = "utf-8"
    for raw_key, raw_value in pairs:
        if raw_key == b"charset" and raw_value.strip():
            charset = raw_value.strip().decode("ascii", errors="replace").lower()
    try:
        "".encode(charset)
    except LookupError as exc:
        raise VerificationError("unknown charset") from exc
    fields: dict[str, str] = {}
    for raw_key, raw_value in pairs:
        try:
            key, value = raw_key.decode(charset), raw_value.decode(charset)
        except UnicodeDecodeError as exc:
            raise VerificationError("body does not match its charset") from exc
        if key in fields:
            raise VerificationError(f"duplicate field {key}")
        fields[key] = value
    return fields


def top_level_members(text: str) -> dict[str, tuple[int, int, Any]]:
    """Each member of a top-level JSON object as key -> (start, end, value), where
    `text[start:end]` is the member's value exactly as it appears in the document.

    Raises ValueError for anything but a single well-formed object without duplicate keys.
    """
    decoder = json.JSONDecoder()

    def skip(index: int) -> int:
        match = _JSON_WS.match(text, index)
        return match.end() if match else index

    index = skip(0)
    if text[index : index + 1] != "{":
        raise ValueError("not a JSON object")
    index = skip(index + 1)
    members: dict[str, tuple[int, int, Any]] = {}
    if text[index : index + 1] == "}":
        index += 1
    else:
        while True:
            if text[index : index + 1] != '"':
                raise ValueError("expected a key")
            key, index = decoder.raw_decode(text, index)
            index = skip(index)
            if text[index : index + 1] != ":":
                raise ValueError("expected ':'")
            start = skip(index + 1)
            value, end = decoder.raw_decode(text, start)
            if key in members:
                raise ValueError(f"duplicate key {key}")
            members[key] = (start, end, value)
            index = skip(end)
            separator = text[index : index + 1]
            index += 1
            if separator == "}":
                break
            if separator != ",":
                raise ValueError("expected ',' or '}'")
            index = skip(index)
    if skip(index) != len(text):
        raise ValueError("trailing data after the object")
    return members


def _http_error(exc: requests.RequestException) -> GatewayError:
    return GatewayError(f"alipay unreachable: {exc.__class__.__name__}", code="network", retryable=True)


class AlipayGateway:
    """The Alipay adapter. Pure protocol: no database, and every answer is verified before use."""

    channel = "alipay"

    def __init__(self, config: AlipayConfig) -> None:
        self.config = config
        self.merchant_id = config.seller_id
        self.app_id = config.app_id

    # --- requests -----------------------------------------------------------------

    def _signed_params(self, method: str, biz_content: Mapping[str, str], *, notify: bool = False) -> dict[str, str]:
        params = {
            "app_id": self.config.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": alipay_time(timezone.now()),
            "version": "1.0",
            "biz_content": json.dumps(dict(biz_content), ensure_ascii=False, separators=(",", ":")),
        }
        if notify:
            params["notify_url"] = self.config.notify_url
        params["sign"] = rsa_sign(
            self.config.merchant_private_key_pem, alipay_signing_string(params, include_sign_type=True)
        )
        return params

    def build_pay(self, *, out_trade_no: str, amount: Decimal, subject: str, expires_at: datetime) -> PayRequest:
        """A signed `alipay.trade.page.pay` URL. `time_expire` is the deadline truncated to the
        second, so Alipay stops accepting payment no later than we stop waiting for it."""
        biz = {
            "out_trade_no": out_trade_no,
            "total_amount": format_amount(amount),
            "subject": alipay_subject(subject),
            "product_code": "FAST_INSTANT_TRADE_PAY",
            "time_expire": alipay_time(expires_at),
        }
        params = self._signed_params("alipay.trade.page.pay", biz, notify=True)
        separator = "&" if "?" in self.config.gateway_url else "?"
        return PayRequest(pay_url=self.config.gateway_url + separator + urllib.parse.urlencode(params))

    def _call(self, method: str, biz_content: Mapping[str, str]) -> dict[str, Any]:
        """POST one API call and return its verified `<method>_response` node."""
        try:
            response = requests.post(
                self.config.gateway_url,
                data=self._signed_params(method, biz_content),
                headers={"Accept": "application/json"},
                timeout=settings.GATEWAY_HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise _http_error(exc) from exc
        if response.status_code != 200:
            raise GatewayError(
                f"alipay answered HTTP {response.status_code}",
                code=f"http_{response.status_code}",
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        return self._verified_node(response.content, method)

    def _verified_node(self, content: bytes, method: str) -> dict[str, Any]:
        try:
            text = content.decode("utf-8")
            members = top_level_members(text)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise GatewayError("alipay answered something that is not JSON", code="bad_response") from exc
        node_name = method.replace(".", "_") + "_response"
        if node_name not in members and "error_response" in members:
            node_name = "error_response"
        if node_name not in members:
            raise GatewayError(f"alipay answer lacks {node_name}", code="bad_response")
        start, end, node = members[node_name]
        sign_member = members.get("sign")
        sign = sign_member[2] if sign_member else ""
        if not isinstance(node, dict):
            raise GatewayError(f"alipay {node_name} is not an object", code="bad_response", retryable=False)
        if not isinstance(sign, str) or not sign:
            # Gateway-level errors (bad app_id, our own bad signature) come unsigned; we still cannot trust them.
            detail = f"{node.get('sub_code', '')} {node.get('sub_msg', '')}".strip()
            raise GatewayError(
                f"unsigned alipay answer: {detail}", code=str(node.get("sub_code") or "unsigned"), retryable=False
            )
        try:
            rsa_verify(self.config.alipay_public_key_pem, text[start:end], sign)
        except CryptoError as exc:
            raise GatewayError(
                f"alipay answer signature check failed ({exc.reason})",
                code="invalid_response_signature",
                retryable=False,
            ) from exc
        return node

    @staticmethod
    def _unexpected(node: Mapping[str, Any]) -> GatewayError:
        code = str(node.get("code", ""))
        sub_code = str(node.get("sub_code", ""))
        message = f"alipay {code} {sub_code}: {node.get('sub_msg') or node.get('msg', '')}"
        retryable = code == "20000" or sub_code.endswith("SYSTEM_ERROR")
        return GatewayError(message, code=sub_code or code, retryable=retryable)

    def query(self, *, out_trade_no: str) -> TradeState:
        """`alipay.trade.query`. The answer carries no seller_id; it is signed by Alipay for our
        app_id, so the trade is ours and merchant_id/app_id are reported from our config."""
        node = self._call("alipay.trade.query", {"out_trade_no": out_trade_no})
        if node.get("code") != SUCCESS_CODE:
            if node.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
                return TradeState(exists=False)
            raise self._unexpected(node)
        status = str(node.get("trade_status", ""))
        try:
            amount = parse_amount(str(node["total_amount"])) if node.get("total_amount") else None
            paid_at = parse_alipay_time(str(node["send_pay_date"])) if node.get("send_pay_date") else None
        except ValueError as exc:
            raise GatewayError(f"alipay query answer malformed: {exc}", code="bad_response", retryable=False) from exc
        return TradeState(
            exists=True,
            paid=status in PAID_STATUSES,
            closed=status == "TRADE_CLOSED",
            amount=amount,
            gateway_trade_no=str(node.get("trade_no", "")),
            paid_at=paid_at if status in PAID_STATUSES else None,
            merchant_id=self.config.seller_id,
            app_id=self.config.app_id,
            raw_state=status,
        )

    def close(self, *, out_trade_no: str) -> CloseResult:
        """`alipay.trade.close`. A trade Alipay never saw has nothing to close; a paid one is reported
        as `already_paid`; `ACQ.TRADE_STATUS_ERROR` is resolved by asking what the state is."""
        node = self._call("alipay.trade.close", {"out_trade_no": out_trade_no})
        if node.get("code") == SUCCESS_CODE:
            return CloseResult(closed=True)
        sub_code = node.get("sub_code")
        if sub_code == "ACQ.TRADE_NOT_EXIST":
            return CloseResult(closed=True)
        if sub_code == "ACQ.TRADE_HAS_SUCCESS":
            return CloseResult(closed=False, already_paid=True)
        if sub_code == "ACQ.TRADE_STATUS_ERROR":
            state = self.query(out_trade_no=out_trade_no)
            if state.paid:
                return CloseResult(closed=False, already_paid=True)
            if state.closed or not state.exists:
                return CloseResult(closed=True)
        raise self._unexpected(node)

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, amount: Decimal, total: Decimal, reason: str
    ) -> RefundResult:
        """`alipay.trade.refund`, idempotent on `out_request_no` (= our out_refund_no).

        Code 10000 is success whether `fund_change` is Y (money moved now) or N (a repeat of a
        refund already done). A business refusal is a "failed" result; a timeout, a system error
        or an unreadable answer raises GatewayError(retryable=True): the outcome is unknown and
        retrying with the same out_refund_no is safe.
        """
        biz = {
            "out_trade_no": out_trade_no,
            "refund_amount": format_amount(amount),
            "out_request_no": out_refund_no,
            "refund_reason": reason,
        }
        node = self._call("alipay.trade.refund", biz)
        if node.get("code") == SUCCESS_CODE:
            return RefundResult("succeeded", gateway_refund_no=str(node.get("trade_no", "")))
        sub_code = str(node.get("sub_code", ""))
        if node.get("code") == "40004" and not sub_code.endswith("SYSTEM_ERROR"):
            return RefundResult("failed", error=f"{sub_code}: {node.get('sub_msg', '')}"[:300])
        raise self._unexpected(node)

    # --- notify -------------------------------------------------------------------

    def parse_notify(self, *, body: bytes, headers: Mapping[str, str], now: datetime) -> NotifyMessage:
        """Verify an async notify (RSA2, Alipay's key) and say what it means.

        A notify carrying `refund_fee` is a refund notice whatever its trade_status (TRADE_SUCCESS
        for a partial refund, TRADE_CLOSED for a full one); its amount is `refund_fee`, which Alipay
        defines as the trade's *total* refunded so far, and `out_refund_no` is `out_biz_no`.
        """
        fields = parse_form_body(body)
        sign = fields.get("sign", "")
        if not sign:
            raise VerificationError("missing sign")
        if fields.get("sign_type") != "RSA2":
            raise VerificationError("sign_type must be RSA2")
        try:
            rsa_verify(self.config.alipay_public_key_pem, alipay_signing_string(fields), sign)
        except CryptoError as exc:
            raise VerificationError(exc.reason) from exc
        for required in ("notify_id", "out_trade_no"):
            if not fields.get(required):
                raise VerificationError(f"missing {required}")

        def amount_of(name: str) -> Decimal:
            try:
                return parse_amount(fields[name])
            except (KeyError, ValueError) as exc:
                raise VerificationError(f"malformed {name}") from exc

        def time_of(name: str) -> datetime | None:
            if not fields.get(name):
                return None
            try:
                return parse_alipay_time(fields[name])
            except ValueError as exc:
                raise VerificationError(f"malformed {name}") from exc

        status = fields.get("trade_status", "")
        common = {
            "channel": self.channel,
            "dedupe_key": fields["notify_id"],
            "out_trade_no": fields["out_trade_no"],
            "gateway_trade_no": fields.get("trade_no", ""),
            "merchant_id": fields.get("seller_id", ""),
            "app_id": fields.get("app_id", ""),
            "fields": fields,
        }
        if fields.get("refund_fee"):
            return NotifyMessage(
                kind="refund",
                amount=amount_of("refund_fee"),
                succeeded=True,
                occurred_at=time_of("gmt_refund"),
                out_refund_no=fields.get("out_biz_no", ""),
                amount_is_cumulative=True,
                **common,
            )
        if status in PAID_STATUSES:
            return NotifyMessage(
                kind="payment",
                amount=amount_of("total_amount"),
                succeeded=True,
                occurred_at=time_of("gmt_payment"),
                **common,
            )
        return NotifyMessage(
            kind="other",
            amount=amount_of("total_amount") if fields.get("total_amount") else Decimal("0.00"),
            succeeded=False,
            occurred_at=time_of("gmt_close") or time_of("gmt_payment"),
            **common,
        )
