"""Gateway notifications: verify, store in the inbox, apply exactly once.

Also the late-payment policy (money for an order closed by timeout: revive it or refund it),
which stays here because it only calls down into orders (order_pay, order_revive).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.bulk import insert_new_unless_conflict, save_fields
from oms.errors import DomainError
from oms.prepared import PreparedQuery
from orders.models import ZERO, CancelReason, Order, OrderStatus
from orders.services import Actor, order_pay, order_revive

from ..errors import GatewayNotConfigured
from ..gateways import get_gateway
from ..gateways.base import Gateway, NotifyMessage, VerificationError
from ..models import (
    Payment,
    PaymentNotification,
    ReconciliationCase,
    Refund,
)
from .cases import case_open
from .money import record_extra_money
from .refunds import refund_mark_failed, refund_mark_succeeded, refund_request

logger = logging.getLogger(__name__)
CaseType = ReconciliationCase.Type


MAX_NOTIFY_BYTES = 64 * 1024
Outcome = PaymentNotification.Outcome


# --- notifications ------------------------------------------------------------------


@dataclass(frozen=True)
class NotifyResult:
    notification: PaymentNotification
    accepted: bool  # answer "done" to the gateway (everything but a failed verification)


def payment_receive_notification(
    *, channel: str, body: bytes, headers: dict[str, str], now: datetime | None = None
) -> NotifyResult:
    """Verify, store in the inbox, and apply a gateway notify exactly once.

    The inbox row is written and applied in one transaction. If applying it fails, the row is
    kept unapplied (pending) and the error raised: the gateway's next retry applies it. If the
    process dies mid-way, nothing was committed and the retry starts afresh. A notify for a
    channel that is not configured (no credentials, sandbox off) is rejected unread.
    """
    now = now or timezone.now()
    raw = body.decode("utf-8", errors="replace")
    if len(body) > MAX_NOTIFY_BYTES:
        row = PaymentNotification.objects.create(
            channel=channel,
            raw_body=raw[:2000],
            headers=headers,
            outcome=Outcome.REJECTED,
            verify_error="body too large",
        )
        return NotifyResult(row, accepted=False)
    try:
        gateway = get_gateway(channel)
        message = gateway.parse_notify(body=body, headers=headers, now=now)
    except (VerificationError, GatewayNotConfigured) as err:
        # A channel with no credentials and the sandbox off has no key to verify against, so
        # nothing it is sent can be genuine: refused like a bad signature, never applied.
        reason = err.reason if isinstance(err, VerificationError) else "channel not configured"
        row = PaymentNotification.objects.create(
            channel=channel,
            raw_body=raw,
            headers=headers,
            outcome=Outcome.REJECTED,
            verify_error=reason[:200],
            processed_at=timezone.now(),
        )
        return NotifyResult(row, accepted=False)

    try:
        with transaction.atomic():
            if message.kind == "payment" and message.succeeded:  # most notifies: one INSERT, no UPDATE
                applied = _apply_plain_payment(
                    channel=channel, message=message, raw=raw, headers=headers, gateway=gateway
                )
                if applied is not None:
                    return NotifyResult(applied, accepted=True)
            # Stored and applied in one transaction. A copy of this notify already stored (the
            # gateway retries) makes the INSERT do nothing; one being applied right now makes it
            # wait for that transaction to end first.
            inbox = _inbox_row(channel=channel, message=message, raw=raw, headers=headers)
            if not insert_new_unless_conflict(inbox):
                stored = PaymentNotification.objects.select_for_update().get(
                    ~Q(outcome=Outcome.DUPLICATE), channel=channel, dedupe_key=message.dedupe_key, verified=True
                )
                if stored.outcome != Outcome.PENDING:
                    return NotifyResult(_record_duplicate(stored, message, raw, headers), accepted=True)
                inbox = stored  # kept unapplied by an earlier delivery that failed: applied now
            _apply_message(inbox, message, gateway)
            inbox.processed_at = timezone.now()
            # What applying it decided; the raw body and headers went in with the row.
            save_fields(inbox, ["outcome", "outcome_note", "payment", "order", "processed_at"])
        return NotifyResult(inbox, accepted=True)
    except Exception:
        # Applying it failed and rolled back: keep the verified notify, unapplied, for the
        # gateway's retry to apply and for staff to see. Then fail as before.
        try:
            insert_new_unless_conflict(_inbox_row(channel=channel, message=message, raw=raw, headers=headers))
        except DatabaseError:
            logger.exception("notify %s %s could not be kept unapplied", channel, message.dedupe_key)
        raise


# The read of every notify applied, compiled once (oms.prepared): the attempt and its order,
# locked by one statement, FOR UPDATE OF the order first and then the payment, so the rows are
# locked in the order every other path takes them (tests/payments/test_notify.py checks it).
_ATTEMPT_AND_ORDER_FOR_UPDATE = PreparedQuery(
    lambda out_trade_no, channel: (
        Payment.objects.select_related("order")
        .select_for_update(of=("order", "self"))
        .filter(out_trade_no=out_trade_no, channel=channel)
        .order_by()
    )
)


def _apply_plain_payment(
    *, channel: str, message: NotifyMessage, raw: str, headers: dict[str, str], gateway: Gateway
) -> PaymentNotification | None:
    """The common notify, applied with its inbox row written once, already holding its outcome.

    Its attempt and order are locked first (every copy of one notify names the same attempt,
    so the copies queue here); when the notify plainly pays the order (the attempt open, the
    merchant's, the amount its own, the order waiting for it), the inbox row is inserted as
    applied and the order paid. Returns None, having written nothing, for anything else: an
    unknown attempt, a case to open, a copy already stored (applied, or kept unapplied by a
    delivery that failed). The caller then stores the row first and decides as before, under
    the locks already held.
    """
    found = _ATTEMPT_AND_ORDER_FOR_UPDATE.objects(out_trade_no=message.out_trade_no, channel=channel)
    if not found or not _pays_plainly(found[0], message, gateway):
        return None
    payment = found[0]
    inbox = _inbox_row(channel=channel, message=message, raw=raw, headers=headers)
    inbox.outcome, inbox.payment, inbox.order = Outcome.APPLIED, payment, payment.order
    inbox.processed_at = timezone.now()
    if not insert_new_unless_conflict(inbox):
        return None
    outcome = apply_success(**_success_arguments(message, inbox, gateway), locked=payment)
    if outcome != Outcome.APPLIED:  # not what _pays_plainly foresaw: the row says what was decided
        save_fields(inbox, ["outcome", "outcome_note", "payment", "order"])
    return inbox


def _pays_plainly(payment: Payment, message: NotifyMessage, gateway: Gateway) -> bool:
    """Whether apply_success, given this attempt read under lock, pays its order and nothing else."""
    return (
        (message.merchant_id, message.app_id) == (gateway.merchant_id, gateway.app_id)
        and message.amount == payment.amount
        and payment.status != Payment.Status.SUCCEEDED
        and payment.order.status == OrderStatus.PENDING_PAYMENT
    )


def _inbox_row(*, channel: str, message: NotifyMessage, raw: str, headers: dict[str, str]) -> PaymentNotification:
    return PaymentNotification(
        channel=channel,
        dedupe_key=message.dedupe_key,
        kind=message.kind,
        raw_body=raw,
        headers=headers,
        verified=True,
        out_trade_no=message.out_trade_no,
    )


def _record_duplicate(
    stored: PaymentNotification, message: NotifyMessage, raw: str, headers: dict[str, str]
) -> PaymentNotification:
    """Another copy of a notify already applied: kept as its own row, pointing at the first."""
    duplicate = _inbox_row(channel=stored.channel, message=message, raw=raw, headers=headers)
    duplicate.outcome, duplicate.outcome_note = Outcome.DUPLICATE, f"#{stored.pk}"
    duplicate.payment, duplicate.order = stored.payment, stored.order
    duplicate.processed_at = timezone.now()
    duplicate.save(force_insert=True)
    return duplicate


def _apply_message(inbox: PaymentNotification, message: NotifyMessage, gateway: Gateway) -> None:
    if message.kind == "refund":
        _apply_refund_notice(inbox, message)
    elif message.kind == "payment" and message.succeeded:
        apply_success(**_success_arguments(message, inbox, gateway))
    else:
        inbox.outcome = Outcome.IGNORED
        inbox.outcome_note = "not a success"


def _success_arguments(message: NotifyMessage, inbox: PaymentNotification, gateway: Gateway) -> dict[str, Any]:
    """apply_success's arguments for a verified notify of a successful payment."""
    return {
        "channel": message.channel,
        "out_trade_no": message.out_trade_no,
        "amount": message.amount,
        "gateway_trade_no": message.gateway_trade_no,
        "paid_at": message.occurred_at,
        "merchant_id": message.merchant_id,
        "app_id": message.app_id,
        "inbox": inbox,
        "source": "notify",
        "gateway": gateway,
    }


def apply_success(
    *,
    channel: str,
    out_trade_no: str,
    amount: Decimal,
    gateway_trade_no: str,
    paid_at: datetime | None,
    merchant_id: str,
    app_id: str,
    inbox: PaymentNotification | None,
    source: str,
    gateway: Gateway | None = None,
    locked: Payment | None = None,
) -> str:
    """The gateway says `out_trade_no` was paid `amount`. Decide what that means, under lock.

    Returns the outcome. Must run inside a transaction. `gateway` is the channel's adapter when
    the caller already has it (the notify verified with it). `locked` is the attempt, with its
    order, when the caller already read both under lock in this transaction; else they are
    read and locked here.
    """
    payment = locked
    if payment is None:
        found = _ATTEMPT_AND_ORDER_FOR_UPDATE.objects(out_trade_no=out_trade_no, channel=channel)
        payment = found[0] if found else None
    outcome_note = ""
    order = payment.order if payment is not None else None
    ids = {"gateway_trade_no": gateway_trade_no, "source": source}

    def finish(outcome: str, note: str = "", payment: Payment | None = None, order: Order | None = None) -> str:
        if inbox is not None:
            inbox.outcome, inbox.outcome_note = outcome, note[:300]
            inbox.payment, inbox.order = payment, order
        return outcome

    if order is None:
        case_open(
            type=CaseType.UNKNOWN_ORDER,
            dedupe_key=f"unknown:{channel}:{out_trade_no}:{gateway_trade_no}",
            summary=_("收到未知商户单号 %(no)s 的付款 %(a)s 元") % {"no": out_trade_no, "a": amount},
            channel=channel,
            notification=inbox,
            out_trade_no=out_trade_no,
            actual_amount=amount,
            **ids,
        )
        return finish(Outcome.CASE_OPENED, "unknown out_trade_no")

    gateway = gateway or get_gateway(channel)
    if (merchant_id, app_id) != (gateway.merchant_id, gateway.app_id):
        case_open(
            type=CaseType.MERCHANT_MISMATCH,
            dedupe_key=f"merchant:{out_trade_no}:{gateway_trade_no}",
            summary=_("商户号/应用ID不符：收到 %(m)s/%(a)s") % {"m": merchant_id, "a": app_id},
            channel=channel,
            order=order,
            payment=payment,
            notification=inbox,
            actual_amount=amount,
            received_merchant_id=merchant_id,
            received_app_id=app_id,
            **ids,
        )
        return finish(Outcome.CASE_OPENED, "merchant/app mismatch", payment, order)
    if amount != payment.amount:
        case_open(
            type=CaseType.AMOUNT_MISMATCH,
            dedupe_key=f"amount:{out_trade_no}:{gateway_trade_no}:{amount}",
            summary=_("付款金额不符：应付 %(e)s，实付 %(a)s") % {"e": payment.amount, "a": amount},
            channel=channel,
            order=order,
            payment=payment,
            notification=inbox,
            expected_amount=payment.amount,
            actual_amount=amount,
            **ids,
        )
        return finish(Outcome.CASE_OPENED, "amount mismatch", payment, order)
    if payment.status == Payment.Status.SUCCEEDED:
        return finish(Outcome.DUPLICATE, "payment already succeeded", payment, order)

    at = paid_at or timezone.now()
    if payment.status == Payment.Status.CLOSED:
        payment.succeed_after_close(trade_no=gateway_trade_no, at=at)
    else:
        payment.succeed(trade_no=gateway_trade_no, at=at)
    save_fields(payment, ["status", "gateway_trade_no", "paid_at", "updated_at"])  # what succeed sets
    actor = Actor.gateway(channel)

    if order.status == OrderStatus.PENDING_PAYMENT:
        order_pay(order=order, amount=amount, actor=actor, at=at, locked=True, out_trade_no=out_trade_no, **ids)
        return finish(Outcome.APPLIED, "", payment, order)

    if order.status == OrderStatus.CANCELLED:
        policy = settings.OMS_LATE_PAYMENT_POLICY
        if policy == "revive" and order.cancel_reason == CancelReason.TIMEOUT and order.paid_total == ZERO:
            try:
                with transaction.atomic():
                    order_revive(order=order, amount=amount, actor=actor, out_trade_no=out_trade_no, **ids)
                return finish(Outcome.APPLIED, "revived after late payment", payment, order)
            except DomainError as err:  # stock gone: fall back to the refund
                outcome_note = f"revive refused: {err.code}"
        record_extra_money(order=order, payment=payment, actor=actor, note="paid after close")
        refund = refund_request(
            order=order,
            payment=payment,
            amount=amount,
            reason=_("关单后付款，自动原路退回"),
            actor=Actor.system("late_payment_policy"),
            out_refund_no=f"{out_trade_no}RL",
            auto_approve=True,
        )
        case_open(
            type=CaseType.PAID_AFTER_CLOSE,
            dedupe_key=f"late:{out_trade_no}",
            summary=_("订单已关闭后收到付款 %(a)s 元，已自动发起原路退款 %(r)s")
            % {"a": amount, "r": refund.out_refund_no},
            channel=channel,
            order=order,
            payment=payment,
            refund=refund,
            notification=inbox,
            actual_amount=amount,
            **ids,
        )
        return finish(Outcome.CASE_OPENED, outcome_note or "late payment refunded", payment, order)

    # The order was already paid by another attempt: the customer paid twice.
    record_extra_money(order=order, payment=payment, actor=actor, note="second successful attempt")
    case_open(
        type=CaseType.OVERPAID,
        dedupe_key=f"overpaid:{out_trade_no}",
        summary=_("订单已付款后，另一笔支付 %(no)s 又成功 %(a)s 元（重复支付）") % {"no": out_trade_no, "a": amount},
        channel=channel,
        order=order,
        payment=payment,
        notification=inbox,
        expected_amount=order.payable_total,
        actual_amount=amount,
        **ids,
    )
    return finish(Outcome.CASE_OPENED, "overpaid", payment, order)


def _apply_refund_notice(inbox: PaymentNotification, message: NotifyMessage) -> None:
    refund = Refund.objects.filter(out_refund_no=message.out_refund_no).first()
    if refund is None:
        case_open(
            type=CaseType.UNKNOWN_ORDER,
            dedupe_key=f"unknown_refund:{message.channel}:{message.out_refund_no}:{message.gateway_trade_no}",
            summary=_("收到未知退款单 %(no)s 的退款通知") % {"no": message.out_refund_no},
            channel=message.channel,
            notification=inbox,
            out_trade_no=message.out_trade_no,
            actual_amount=message.amount,
        )
        inbox.outcome = Outcome.CASE_OPENED
        return
    inbox.payment_id, inbox.order_id = refund.payment_id, refund.order_id
    expected = refund.amount
    if message.amount_is_cumulative and refund.payment_id:
        earlier = (
            Refund.objects.filter(payment_id=refund.payment_id, status=Refund.Status.SUCCEEDED)
            .exclude(pk=refund.pk)
            .aggregate(total=Sum("amount"))["total"]
        )
        expected = (earlier or ZERO) + refund.amount
    if message.amount != expected:
        case_open(
            type=CaseType.AMOUNT_MISMATCH,
            dedupe_key=f"refund_amount:{refund.out_refund_no}:{message.amount}",
            summary=_("退款金额不符：应退 %(e)s，渠道 %(a)s") % {"e": expected, "a": message.amount},
            channel=message.channel,
            order=refund.order,
            refund=refund,
            notification=inbox,
            expected_amount=expected,
            actual_amount=message.amount,
        )
        inbox.outcome = Outcome.CASE_OPENED
        return
    if refund.status == Refund.Status.SUCCEEDED:
        inbox.outcome = Outcome.DUPLICATE
        return
    if message.succeeded:
        if refund.status in (Refund.Status.APPROVED, Refund.Status.FAILED):
            with transaction.atomic():
                locked = Refund.objects.select_for_update().get(pk=refund.pk)
                locked.start()
                locked.save()
        refund_mark_succeeded(
            refund=refund, gateway_refund_no=message.gateway_trade_no, actor=Actor.gateway(message.channel)
        )
        inbox.outcome = Outcome.APPLIED
    else:
        refund_mark_failed(refund=refund, error=str(message.fields.get("refund_status", "refund failed")))
        inbox.outcome = Outcome.CASE_OPENED
