"""What the sandbox gateway does: open, pay, close and refund trades, and deliver notifies.

Each verb runs in one transaction under a row lock, like the real gateway would serialise them.
A state change and the notify it causes are written together; delivery is queued on commit.
Errors are SandboxError with a channel-neutral `code`; the protocol layers translate them into
Alipay `sub_code`s or WeChat Pay error codes.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from . import messages
from .keys import ALIPAY_APP_ID, ALIPAY_SELLER_ID, WECHATPAY_APPID, WECHATPAY_MCHID, sandbox_keys
from .models import SandboxChannel, SandboxNotify, SandboxRefund, SandboxTrade

logger = logging.getLogger(__name__)

# The real retry schedules, in seconds after each failed attempt (scaled by SANDBOX_RETRY_SCALE).
RETRY_SCHEDULE: dict[str, tuple[int, ...]] = {
    SandboxChannel.ALIPAY: (4 * 60, 10 * 60, 10 * 60, 3600, 2 * 3600, 6 * 3600, 15 * 3600),
    SandboxChannel.WECHATPAY: (
        15, 15, 30, 3 * 60, 10 * 60, 20 * 60, 30 * 60, 30 * 60, 30 * 60, 3600,
        3 * 3600, 3 * 3600, 3 * 3600, 6 * 3600, 6 * 3600,
    ),
}  # fmt: skip
DELIVERY_TIMEOUT_SECONDS = 5
RESPONSE_KEEP_CHARS = 2000
TAMPER_DELTA = Decimal("0.01")


class SandboxError(Exception):
    """A request the gateway refuses. `code` is stable; `message` is what a cashier page shows."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class SandboxFaults:
    """Misbehaviour to inject into the payment notify of one trade.

    duplicate: the same notify (same notify_id / id) is delivered twice.
    bad_signature: the signature is corrupted (a verifier must refuse it).
    tampered_amount: the amount is changed after signing (a verifier must refuse it).
    delay_seconds: the first delivery waits this long.
    """

    duplicate: bool = False
    bad_signature: bool = False
    tampered_amount: bool = False
    delay_seconds: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def notify_target(channel: str) -> str:
    """Where the merchant receives notifies: OMS_SITE_URL + /payments/notify/<channel>/, fixed at write time."""
    return f"{settings.OMS_SITE_URL.rstrip('/')}/payments/notify/{channel}/"


def _locked_trade(channel: str, out_trade_no: str) -> SandboxTrade | None:
    return SandboxTrade.objects.select_for_update().filter(channel=channel, out_trade_no=out_trade_no).first()


def _expire_if_due(trade: SandboxTrade, now: datetime) -> None:
    """An unpaid trade past its time_expire is closed, as the real gateways do on their own."""
    if trade.status == SandboxTrade.Status.WAIT_BUYER_PAY and trade.time_expire and now >= trade.time_expire:
        trade.status = SandboxTrade.Status.TRADE_CLOSED
        trade.closed_at = trade.time_expire
        trade.save(update_fields=["status", "closed_at"])


def refunded_total(trade: SandboxTrade) -> Decimal:
    return trade.refunds.aggregate(total=Sum("amount"))["total"] or Decimal("0.00")


# --- trades -------------------------------------------------------------------------


def sandbox_trade_open(
    *, channel: str, out_trade_no: str, amount: Decimal, subject: str, time_expire: datetime | None, notify_url: str
) -> SandboxTrade:
    """Create the trade, or return the existing one when the same out_trade_no comes with the same amount.

    A different amount for a known out_trade_no is refused (code "amount_mismatch"), as both
    gateways refuse a reused merchant order number with different contents. The caller decides
    what an existing paid or closed trade means for its protocol.
    """
    for _attempt in range(2):
        try:
            with transaction.atomic():
                trade = _locked_trade(channel, out_trade_no)
                if trade is None:
                    return SandboxTrade.objects.create(
                        channel=channel,
                        out_trade_no=out_trade_no,
                        amount=amount,
                        subject=subject,
                        time_expire=time_expire,
                        notify_url=notify_url,
                    )
                _expire_if_due(trade, timezone.now())
                if trade.amount != amount:
                    raise SandboxError("amount_mismatch", "交易信息与首次请求不一致（金额不同）")
                return trade
        except IntegrityError:
            continue  # a concurrent request created it first; read theirs
    raise SandboxError("system_error", "并发创建交易失败，请重试")


def sandbox_trade_lookup(*, channel: str, out_trade_no: str) -> SandboxTrade | None:
    """The trade as a query sees it (an overdue unpaid trade is closed first), or None."""
    with transaction.atomic():
        trade = _locked_trade(channel, out_trade_no)
        if trade is not None:
            _expire_if_due(trade, timezone.now())
        return trade


def sandbox_trade_close(*, channel: str, out_trade_no: str) -> SandboxTrade:
    """Close an unpaid trade. Codes: trade_not_exist, trade_paid, trade_closed (already closed)."""
    with transaction.atomic():
        trade = _locked_trade(channel, out_trade_no)
        if trade is None:
            raise SandboxError("trade_not_exist", "交易不存在")
        now = timezone.now()
        _expire_if_due(trade, now)
        if trade.status == SandboxTrade.Status.TRADE_SUCCESS:
            raise SandboxError("trade_paid", "交易已支付")
        if trade.status == SandboxTrade.Status.TRADE_CLOSED:
            raise SandboxError("trade_closed", "交易已关闭")
        trade.status = SandboxTrade.Status.TRADE_CLOSED
        trade.closed_at = now
        trade.save(update_fields=["status", "closed_at"])
        return trade


def sandbox_pay(*, channel: str, out_trade_no: str, faults: SandboxFaults | None = None) -> SandboxTrade:
    """The buyer pays: the trade becomes TRADE_SUCCESS and its notify is written to the outbox.

    Refused when the trade is unknown, already paid, closed or past time_expire. Delivery is
    queued on commit, after `faults.delay_seconds` when set.
    """
    faults = faults or SandboxFaults()
    with transaction.atomic():
        trade = _locked_trade(channel, out_trade_no)
        if trade is None:
            raise SandboxError("trade_not_exist", "交易不存在")
        now = timezone.now()
        if trade.status == SandboxTrade.Status.TRADE_SUCCESS:
            raise SandboxError("trade_paid", "该交易已支付，请勿重复付款")
        if trade.status == SandboxTrade.Status.TRADE_CLOSED:
            raise SandboxError("trade_closed", "交易已关闭")
        if trade.time_expire and now >= trade.time_expire:
            raise SandboxError("trade_expired", "交易已超时关闭")
        trade.status = SandboxTrade.Status.TRADE_SUCCESS
        trade.trade_no = messages.new_trade_no(channel, now)
        trade.paid_at = now
        trade.faults = faults.as_dict()
        trade.save(update_fields=["status", "trade_no", "paid_at", "faults"])
        if channel == SandboxChannel.ALIPAY:
            rows = _alipay_payment_notifies(trade, faults, now)
        else:
            rows = _wechatpay_payment_notifies(trade, faults, now)
        for row in rows:
            transaction.on_commit(functools.partial(_queue_delivery, row.pk, faults.delay_seconds))
        return trade


def sandbox_refund(
    *,
    channel: str,
    out_trade_no: str,
    out_refund_no: str,
    amount: Decimal,
    total: Decimal | None = None,
    reason: str = "",
) -> tuple[SandboxRefund, bool]:
    """Refund part or all of a paid trade, idempotent on out_refund_no: (refund, created now).

    A repeat with the same out_refund_no and amount returns the first refund and writes nothing.
    Codes: trade_not_exist, refund_mismatch (same number, other trade or amount), total_mismatch,
    trade_not_paid, refund_exceeds (all refunds together may never exceed the trade amount).
    Every new refund succeeds at once and writes its notify to the outbox.
    """
    with transaction.atomic():
        trade = _locked_trade(channel, out_trade_no)
        if trade is None:
            raise SandboxError("trade_not_exist", "交易不存在")
        existing = SandboxRefund.objects.filter(channel=channel, out_refund_no=out_refund_no).first()
        if existing is not None:
            if existing.trade_id != trade.pk or existing.amount != amount:
                raise SandboxError("refund_mismatch", "退款请求参数与首次请求不一致")
            return existing, False
        if total is not None and total != trade.amount:
            raise SandboxError("total_mismatch", "订单金额与原交易不一致")
        if trade.status != SandboxTrade.Status.TRADE_SUCCESS:
            raise SandboxError("trade_not_paid", "交易状态不合法（未支付或已关闭）")
        already = refunded_total(trade)
        if amount <= 0 or already + amount > trade.amount:
            raise SandboxError("refund_exceeds", "退款金额超过可退金额")
        now = timezone.now()
        refund = SandboxRefund.objects.create(
            trade=trade,
            channel=channel,
            out_refund_no=out_refund_no,
            amount=amount,
            reason=reason[:256],
            status=SandboxRefund.Status.SUCCESS,
            refund_no=trade.trade_no if channel == SandboxChannel.ALIPAY else messages.new_refund_no(now),
            succeeded_at=now,
        )
        if channel == SandboxChannel.ALIPAY and already + amount == trade.amount:
            # Alipay closes a fully refunded trade (its notify says TRADE_CLOSED with gmt_close).
            trade.status = SandboxTrade.Status.TRADE_CLOSED
            trade.closed_at = now
            trade.save(update_fields=["status", "closed_at"])
        if channel == SandboxChannel.ALIPAY:
            row = _alipay_refund_notify(trade, refund, already + amount, now)
        else:
            row = _wechatpay_refund_notify(trade, refund, now)
        transaction.on_commit(functools.partial(_queue_delivery, row.pk, 0))
        return refund, True


# --- notify content -------------------------------------------------------------------


def _alipay_trade_fields(trade: SandboxTrade, notify_id: str, now: datetime) -> dict[str, str]:
    amount = messages.yuan(trade.amount)
    return {
        "notify_time": messages.alipay_time_or_empty(now),
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": ALIPAY_APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "seller_id": ALIPAY_SELLER_ID,
        "buyer_id": messages.SANDBOX_BUYER_ID,
        "buyer_logon_id": messages.SANDBOX_BUYER_LOGON_ID,
        "total_amount": amount,
        "receipt_amount": amount,
        "buyer_pay_amount": amount,
        "invoice_amount": amount,
        "point_amount": "0.00",
        "trade_status": "TRADE_SUCCESS",
        "gmt_create": messages.alipay_time_or_empty(trade.created_at),
        "gmt_payment": messages.alipay_time_or_empty(trade.paid_at),
        "subject": trade.subject,
    }


def _alipay_payment_notifies(trade: SandboxTrade, faults: SandboxFaults, now: datetime) -> list[SandboxNotify]:
    keys = sandbox_keys()
    fields = messages.alipay_sign_fields(_alipay_trade_fields(trade, messages.new_notify_id(), now), keys)
    signed_body = messages.alipay_form(fields)
    if faults.bad_signature:
        fields["sign"] = messages.corrupt_signature(fields["sign"])
    if faults.tampered_amount:
        tampered = messages.yuan(_tampered(trade.amount))
        fields.update(total_amount=tampered, receipt_amount=tampered, buyer_pay_amount=tampered)
    return _outbox(
        trade=trade,
        event="TRADE_SUCCESS",
        dedupe_key=fields["notify_id"],
        body=messages.alipay_form(fields),
        signed_body=signed_body,
        headers={"Content-Type": messages.ALIPAY_FORM_CONTENT_TYPE},
        copies=2 if faults.duplicate else 1,
        delay_seconds=faults.delay_seconds,
    )


def _alipay_refund_notify(
    trade: SandboxTrade, refund: SandboxRefund, refunded: Decimal, now: datetime
) -> SandboxNotify:
    fields = _alipay_trade_fields(trade, messages.new_notify_id(), now)
    fields.update(
        refund_fee=messages.yuan(refunded),  # Alipay: the total refunded so far on this trade
        out_biz_no=refund.out_refund_no,
        gmt_refund=messages.alipay_time_or_empty(refund.succeeded_at),
    )
    if trade.status == SandboxTrade.Status.TRADE_CLOSED:
        fields.update(trade_status="TRADE_CLOSED", gmt_close=messages.alipay_time_or_empty(trade.closed_at))
    body = messages.alipay_form(messages.alipay_sign_fields(fields, sandbox_keys()))
    (row,) = _outbox(
        trade=trade,
        event="REFUND",
        dedupe_key=fields["notify_id"],
        body=body,
        signed_body=body,
        headers={"Content-Type": messages.ALIPAY_FORM_CONTENT_TYPE},
    )
    return row


def _wechatpay_transaction(trade: SandboxTrade, total_fen: int) -> dict[str, object]:
    return {
        "mchid": WECHATPAY_MCHID,
        "appid": WECHATPAY_APPID,
        "out_trade_no": trade.out_trade_no,
        "transaction_id": trade.trade_no,
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": messages.rfc3339(trade.paid_at) if trade.paid_at else "",
        "payer": {"openid": messages.SANDBOX_OPENID},
        "amount": {"total": total_fen, "payer_total": total_fen, "currency": "CNY", "payer_currency": "CNY"},
    }


def _wechatpay_payment_notifies(trade: SandboxTrade, faults: SandboxFaults, now: datetime) -> list[SandboxNotify]:
    keys = sandbox_keys()
    notification_id = messages.new_notify_id()

    def envelope(total_fen: int) -> str:
        return messages.wechatpay_envelope(
            keys=keys,
            notification_id=notification_id,
            event_type="TRANSACTION.SUCCESS",
            summary="支付成功",
            original_type="transaction",
            payload=_wechatpay_transaction(trade, total_fen),
            now=now,
        )

    signed_body = envelope(messages.fen(trade.amount))
    # Tampering re-seals the resource with another amount after the signature was made over the
    # original body, so decryption alone would pass: only the signature check catches it.
    body = envelope(messages.fen(_tampered(trade.amount))) if faults.tampered_amount else signed_body
    return _outbox(
        trade=trade,
        event="TRANSACTION.SUCCESS",
        dedupe_key=notification_id,
        body=body,
        signed_body=signed_body,
        headers={"Content-Type": "application/json"},
        corrupt_signature=faults.bad_signature,
        copies=2 if faults.duplicate else 1,
        delay_seconds=faults.delay_seconds,
    )


def _wechatpay_refund_notify(trade: SandboxTrade, refund: SandboxRefund, now: datetime) -> SandboxNotify:
    total_fen = messages.fen(trade.amount)
    payload = {
        "mchid": WECHATPAY_MCHID,
        "out_trade_no": trade.out_trade_no,
        "transaction_id": trade.trade_no,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_no,
        "refund_status": "SUCCESS",
        "success_time": messages.rfc3339(refund.succeeded_at or now),
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": total_fen,
            "refund": messages.fen(refund.amount),
            "payer_total": total_fen,
            "payer_refund": messages.fen(refund.amount),
        },
    }
    notification_id = messages.new_notify_id()
    body = messages.wechatpay_envelope(
        keys=sandbox_keys(),
        notification_id=notification_id,
        event_type="REFUND.SUCCESS",
        summary="退款成功",
        original_type="refund",
        payload=payload,
        now=now,
    )
    (row,) = _outbox(
        trade=trade,
        event="REFUND.SUCCESS",
        dedupe_key=notification_id,
        body=body,
        signed_body=body,
        headers={"Content-Type": "application/json"},
    )
    return row


def _tampered(amount: Decimal) -> Decimal:
    """A different, still plausible amount: one cent less (or more, for a one-cent trade)."""
    return amount - TAMPER_DELTA if amount > TAMPER_DELTA else amount + TAMPER_DELTA


def _outbox(
    *,
    trade: SandboxTrade,
    event: str,
    dedupe_key: str,
    body: str,
    signed_body: str,
    headers: dict[str, str],
    corrupt_signature: bool = False,
    copies: int = 1,
    delay_seconds: int = 0,
) -> list[SandboxNotify]:
    first_attempt = timezone.now() + timedelta(seconds=delay_seconds)
    return [
        SandboxNotify.objects.create(
            channel=trade.channel,
            trade=trade,
            event=event,
            dedupe_key=dedupe_key,
            target_url=notify_target(trade.channel),
            body=body,
            signed_body=signed_body,
            headers=headers,
            corrupt_signature=corrupt_signature,
            next_attempt_at=first_attempt,
        )
        for _copy in range(copies)
    ]


def _queue_delivery(notify_id: int, delay_seconds: int) -> None:
    from .tasks import sandbox_deliver_notify  # tasks import this module

    if delay_seconds > 0:
        sandbox_deliver_notify.apply_async(args=[notify_id], countdown=delay_seconds)
    else:
        sandbox_deliver_notify.delay(notify_id)


# --- delivery -------------------------------------------------------------------------


def delivery_headers(notify: SandboxNotify, now: datetime) -> dict[str, str]:
    """Headers for one attempt. WeChat Pay notifies are signed afresh (timestamp, nonce) every time."""
    headers = dict(notify.headers)
    if notify.channel == SandboxChannel.WECHATPAY:
        headers.update(
            messages.wechatpay_platform_headers(
                keys=sandbox_keys(), body=notify.signed_body or notify.body, now=now, corrupt=notify.corrupt_signature
            )
        )
    return headers


def _accepted(channel: str, status: int, text: str) -> bool:
    if channel == SandboxChannel.ALIPAY:
        return status == 200 and text.strip() == "success"
    return 200 <= status < 300


def sandbox_notify_deliver(*, notify_id: int) -> float | None:
    """One delivery attempt. Returns the countdown (seconds) until the next one, or None when done.

    Done means delivered (Alipay answered the bare body `success`; WeChat Pay answered 2xx), or the
    real retry schedule has run out. Safe to call twice: a delivered row is never posted again, and
    only the newest attempt schedules a retry.
    """
    with transaction.atomic():
        notify = SandboxNotify.objects.select_for_update().filter(pk=notify_id).first()
        if notify is None or notify.delivered_at or notify.gave_up_at:
            return None
        notify.attempts += 1
        attempt = notify.attempts
        headers = delivery_headers(notify, timezone.now())
        if notify.channel == SandboxChannel.WECHATPAY:
            notify.headers = headers
        notify.save(update_fields=["attempts", "headers"])
    try:
        response = requests.post(
            notify.target_url, data=notify.body.encode("utf-8"), headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS
        )
        status: int | None = response.status_code
        text = response.text
        accepted = _accepted(notify.channel, response.status_code, text)
    except requests.RequestException as exc:
        status, text, accepted = None, f"{exc.__class__.__name__}: {exc}", False
    schedule = RETRY_SCHEDULE[notify.channel]
    countdown: float | None = None
    with transaction.atomic():
        notify = SandboxNotify.objects.select_for_update().get(pk=notify_id)
        now = timezone.now()
        notify.last_status = status
        notify.last_response = text[:RESPONSE_KEEP_CHARS]
        if accepted:
            notify.delivered_at = notify.delivered_at or now
            notify.next_attempt_at = None
        elif attempt > len(schedule):
            notify.gave_up_at = now
            notify.next_attempt_at = None
        elif notify.attempts == attempt and not notify.delivered_at:
            countdown = schedule[attempt - 1] * settings.SANDBOX_RETRY_SCALE
            notify.next_attempt_at = now + timedelta(seconds=countdown)
        notify.save(update_fields=["last_status", "last_response", "delivered_at", "gave_up_at", "next_attempt_at"])
    logger.info("sandbox notify %s attempt %s -> %s (accepted=%s)", notify_id, attempt, status, accepted)
    return countdown


def sandbox_notifies_overdue(*, now: datetime, grace: timedelta = timedelta(minutes=1)) -> list[int]:
    """Ids of undelivered notifies whose next attempt is overdue (a lost task, a broker outage)."""
    return list(
        SandboxNotify.objects.filter(delivered_at__isnull=True, gave_up_at__isnull=True)
        .filter(Q(next_attempt_at__lte=now - grace) | Q(next_attempt_at__isnull=True))
        .values_list("pk", flat=True)
    )
