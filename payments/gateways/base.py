"""The one interface every gateway adapter implements.

Adapters turn our rows into the gateway's wire format and back. They verify every
signature with `cryptography`; there is no switch anywhere that skips verification.
They never touch the database: services decide what a verified message means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol


class VerificationError(Exception):
    """A notify or response whose signature, timestamp or format does not check out."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class GatewayError(Exception):
    """The gateway could not be reached, or answered with an error we cannot interpret."""

    def __init__(self, message: str, *, code: str = "", retryable: bool = True) -> None:
        self.code = code
        self.retryable = retryable
        super().__init__(message)


@dataclass(frozen=True)
class NotifyMessage:
    """A verified, parsed notify. `kind` is "payment", "refund" or "other"."""

    channel: str
    dedupe_key: str  # Alipay notify_id; WeChat Pay notification id
    kind: str
    out_trade_no: str
    gateway_trade_no: str
    amount: Decimal  # payment: the trade's total amount; refund: this refund's amount (yuan)
    succeeded: bool  # paid (TRADE_SUCCESS / TRADE_FINISHED / SUCCESS) or refund succeeded
    merchant_id: str  # Alipay seller_id; WeChat Pay mchid
    app_id: str
    occurred_at: datetime | None
    out_refund_no: str = ""  # refund notices: Alipay out_biz_no, WeChat Pay out_refund_no
    # refund notices: True when `amount` is the trade's refunded total so far (Alipay's refund_fee),
    # False when it is this refund's own amount (WeChat Pay's amount.refund)
    amount_is_cumulative: bool = False
    fields: Mapping[str, object] = field(default_factory=dict)  # the verified payload, for the record


@dataclass(frozen=True)
class PayRequest:
    """What the storefront needs to send the customer to pay: a page URL or a QR code URL."""

    pay_url: str = ""
    code_url: str = ""


@dataclass(frozen=True)
class TradeState:
    """Answer of a trade query. `exists` is False when the gateway never saw the trade."""

    exists: bool
    paid: bool = False
    closed: bool = False
    amount: Decimal | None = None
    gateway_trade_no: str = ""
    paid_at: datetime | None = None
    merchant_id: str = ""
    app_id: str = ""
    raw_state: str = ""


@dataclass(frozen=True)
class CloseResult:
    closed: bool  # closed now, or already closed / never created at the gateway
    already_paid: bool = False  # Alipay ACQ.TRADE_HAS_SUCCESS, WeChat Pay ORDERPAID


@dataclass(frozen=True)
class RefundResult:
    """status: "succeeded", "processing" (an async notice will follow) or "failed"."""

    status: str
    gateway_refund_no: str = ""
    error: str = ""


class Gateway(Protocol):
    channel: str
    merchant_id: str
    app_id: str

    def build_pay(self, *, out_trade_no: str, amount: Decimal, subject: str, expires_at: datetime) -> PayRequest: ...

    def parse_notify(self, *, body: bytes, headers: Mapping[str, str], now: datetime) -> NotifyMessage:
        """Verify and parse; raise VerificationError on any doubt."""
        ...

    def query(self, *, out_trade_no: str) -> TradeState: ...

    def close(self, *, out_trade_no: str) -> CloseResult: ...

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, amount: Decimal, total: Decimal, reason: str
    ) -> RefundResult: ...
