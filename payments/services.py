"""Money in and money out. Every function here that changes a row runs in a transaction,
locks the order before the payment or refund (always in that order), and writes the
order's timeline. Gateway calls happen outside transactions; their results are applied
in a fresh one, under lock, so a retry or a concurrent notify cannot count money twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.errors import DomainError, InvalidTransition, ValidationFailed
from orders.models import ZERO, CancelReason, Order, OrderEvent, OrderStatus
from orders.services import Actor, order_event_record, order_pay, order_revive

from .gateways import get_gateway
from .gateways.base import GatewayError, NotifyMessage, PayRequest, VerificationError
from .models import (
    GATEWAY_CHANNELS,
    BankTransfer,
    Channel,
    Payment,
    PaymentNotification,
    ReconciliationCase,
    Refund,
)

logger = logging.getLogger(__name__)

MAX_NOTIFY_BYTES = 64 * 1024
Outcome = PaymentNotification.Outcome
CaseType = ReconciliationCase.Type


class PaymentDeadlinePassed(DomainError):
    code = "payment_deadline_passed"
    status_code = 409
    default_message = "订单已超过付款截止时间"


class GatewayUnavailable(DomainError):
    code = "gateway_unavailable"
    status_code = 502
    default_message = "支付渠道暂时不可用，请稍后重试"


class RefundNotAllowed(DomainError):
    code = "refund_not_allowed"
    status_code = 409
    default_message = "退款金额超过可退金额"


# --- cases -------------------------------------------------------------------------


def case_open(
    *,
    type: str,
    dedupe_key: str,
    summary: str,
    channel: str = "",
    order: Order | None = None,
    payment: Payment | None = None,
    refund: Refund | None = None,
    notification: PaymentNotification | None = None,
    out_trade_no: str = "",
    expected_amount: Decimal | None = None,
    actual_amount: Decimal | None = None,
    **data: Any,
) -> ReconciliationCase:
    """Open a finance case once per dedupe key; a repeat returns the existing case."""
    case, created = ReconciliationCase.objects.get_or_create(
        dedupe_key=dedupe_key[:200],
        defaults={
            "type": type,
            "summary": summary[:300],
            "channel": channel,
            "order": order,
            "payment": payment,
            "refund": refund,
            "notification": notification,
            "out_trade_no": out_trade_no or (payment.out_trade_no if payment else ""),
            "expected_amount": expected_amount,
            "actual_amount": actual_amount,
            "data": data,
        },
    )
    if created and order is not None:
        order_event_record(
            order=order,
            type=OrderEvent.Type.CASE_OPENED,
            actor=Actor.system("reconciliation"),
            reason=str(ReconciliationCase.Type(type).label),
            case_id=case.pk,
            summary=summary,
        )
    return case


def cases_assign(*, cases, user) -> int:
    """Finance takes open cases: they move to in progress with `user` as the assignee."""
    return cases.filter(status=ReconciliationCase.Status.OPEN).update(
        assignee=user, status=ReconciliationCase.Status.IN_PROGRESS
    )


def case_review_save(*, case: ReconciliationCase) -> ReconciliationCase:
    """Save finance's edit of a case; resolving it stamps resolved_at once (reopening clears it)."""
    if case.status == ReconciliationCase.Status.RESOLVED:
        case.resolved_at = case.resolved_at or timezone.now()
    else:
        case.resolved_at = None
    case.save()
    return case


# --- starting a payment ----------------------------------------------------------------


def _lock_order(order_id: int) -> Order:
    return Order.objects.select_for_update().get(pk=order_id)


def payment_start(
    *, order: Order, channel: str, actor: Actor, now: datetime | None = None
) -> tuple[Payment, PayRequest]:
    """Open (or reuse) an attempt for `channel` and ask the gateway how the customer pays.

    Reuses the open attempt of the same channel, so a customer who clicks twice pays
    one trade. The gateway trade expires at the order's payment deadline.
    """
    now = now or timezone.now()
    if channel not in GATEWAY_CHANNELS:
        raise ValidationFailed(fields={"channel": [_("只能通过支付宝或微信支付发起在线支付")]})
    with transaction.atomic():
        order = _lock_order(order.pk)
        if order.status != OrderStatus.PENDING_PAYMENT:
            raise InvalidTransition(
                _("订单当前状态为「%(s)s」，不能发起支付") % {"s": order.get_status_display()},
                details={"status": order.status, "action": "start_payment"},
            )
        if now >= order.payment_deadline:
            raise PaymentDeadlinePassed(details={"payment_deadline": order.payment_deadline.isoformat()})
        if channel not in order.storefront.allowed_payment_methods:
            raise ValidationFailed(fields={"channel": [_("本店铺不支持该支付方式")]})
        payment = (
            order.payments.filter(channel=channel, status=Payment.Status.CREATED, amount=order.payable_total)
            .order_by("-created_at")
            .first()
        )
        if payment is None:
            attempt = order.payments.count() + 1
            payment = Payment.objects.create(
                order=order,
                channel=channel,
                out_trade_no=f"{order.order_no}P{attempt:02d}",
                amount=order.payable_total,
                expires_at=order.payment_deadline,
            )
            order_event_record(
                order=order,
                type=OrderEvent.Type.PAYMENT_STARTED,
                actor=actor,
                channel=channel,
                out_trade_no=payment.out_trade_no,
                amount=str(payment.amount),
            )
    try:
        request = get_gateway(channel).build_pay(
            out_trade_no=payment.out_trade_no,
            amount=payment.amount,
            subject=_order_subject(order),
            expires_at=order.payment_deadline,
        )
    except GatewayError as err:
        logger.warning("build_pay failed for %s: %s", payment.out_trade_no, err)
        raise GatewayUnavailable() from err
    return payment, request


def _order_subject(order: Order) -> str:
    names = [line.name for line in order.lines.all()[:3]]
    subject = "、".join(names) or order.order_no
    return f"订单{order.order_no} {subject}"[:120]


# --- notifications ------------------------------------------------------------------


@dataclass(frozen=True)
class NotifyResult:
    notification: PaymentNotification
    accepted: bool  # answer "done" to the gateway (everything but a failed verification)


def payment_receive_notification(
    *, channel: str, body: bytes, headers: dict[str, str], now: datetime | None = None
) -> NotifyResult:
    """Verify, store in the inbox, and apply a gateway notify exactly once.

    The inbox row is committed before it is applied, so a crash while applying leaves
    a pending row that the gateway's next retry picks up again.
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
        message = get_gateway(channel).parse_notify(body=body, headers=headers, now=now)
    except VerificationError as err:
        row = PaymentNotification.objects.create(
            channel=channel,
            raw_body=raw,
            headers=headers,
            outcome=Outcome.REJECTED,
            verify_error=err.reason[:200],
            processed_at=timezone.now(),
        )
        return NotifyResult(row, accepted=False)

    try:
        with transaction.atomic():
            inbox = PaymentNotification.objects.create(
                channel=channel,
                dedupe_key=message.dedupe_key,
                kind=message.kind,
                raw_body=raw,
                headers=headers,
                verified=True,
                out_trade_no=message.out_trade_no,
            )
    except IntegrityError:
        inbox = PaymentNotification.objects.get(
            ~Q(outcome=Outcome.DUPLICATE), channel=channel, dedupe_key=message.dedupe_key, verified=True
        )
    with transaction.atomic():
        original = PaymentNotification.objects.select_for_update().get(pk=inbox.pk)
        if original.outcome != Outcome.PENDING:
            duplicate = PaymentNotification.objects.create(
                channel=channel,
                dedupe_key=message.dedupe_key,
                kind=message.kind,
                raw_body=raw,
                headers=headers,
                verified=True,
                out_trade_no=message.out_trade_no,
                outcome=Outcome.DUPLICATE,
                outcome_note=f"#{original.pk}",
                payment=original.payment,
                order=original.order,
                processed_at=timezone.now(),
            )
            return NotifyResult(duplicate, accepted=True)
        _apply_message(original, message)
        original.processed_at = timezone.now()
        original.save()
    return NotifyResult(original, accepted=True)


def _apply_message(inbox: PaymentNotification, message: NotifyMessage) -> None:
    if message.kind == "refund":
        _apply_refund_notice(inbox, message)
    elif message.kind == "payment" and message.succeeded:
        _apply_success(
            channel=message.channel,
            out_trade_no=message.out_trade_no,
            amount=message.amount,
            gateway_trade_no=message.gateway_trade_no,
            paid_at=message.occurred_at,
            merchant_id=message.merchant_id,
            app_id=message.app_id,
            inbox=inbox,
            source="notify",
        )
    else:
        inbox.outcome = Outcome.IGNORED
        inbox.outcome_note = "not a success"


def _apply_success(
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
) -> str:
    """The gateway says `out_trade_no` was paid `amount`. Decide what that means, under lock.

    Returns the outcome. Must run inside a transaction.
    """
    outcome_note = ""
    found = (
        Payment.objects.filter(out_trade_no=out_trade_no, channel=channel).values_list("order_id", flat=True).first()
    )
    ids = {"gateway_trade_no": gateway_trade_no, "source": source}

    def finish(outcome: str, note: str = "", payment: Payment | None = None, order: Order | None = None) -> str:
        if inbox is not None:
            inbox.outcome, inbox.outcome_note = outcome, note[:300]
            inbox.payment, inbox.order = payment, order
        return outcome

    if found is None:
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

    order = _lock_order(found)
    payment = Payment.objects.select_for_update().get(out_trade_no=out_trade_no)
    gateway = get_gateway(channel)
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
    payment.save()
    actor = Actor.gateway(channel)

    if order.status == OrderStatus.PENDING_PAYMENT:
        order_pay(order=order, amount=amount, actor=actor, at=at, out_trade_no=out_trade_no, **ids)
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
        _record_extra_money(order=order, payment=payment, actor=actor, note="paid after close")
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
    _record_extra_money(order=order, payment=payment, actor=actor, note="second successful attempt")
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


def _record_extra_money(*, order: Order, payment: Payment, actor: Actor, note: str) -> None:
    """Money arrived that does not move the order (late or second payment): count it anyway."""
    Order.objects.filter(pk=order.pk).update(paid_total=order.paid_total + payment.amount)
    order.paid_total += payment.amount
    order_event_record(
        order=order,
        type=OrderEvent.Type.PAYMENT_RECEIVED,
        actor=actor,
        reason=note,
        out_trade_no=payment.out_trade_no,
        amount=str(payment.amount),
    )


# --- gateway check (补单) ----------------------------------------------------------------


@dataclass
class SyncReport:
    applied: int = 0
    closed: int = 0
    still_open: int = 0
    errors: int = 0


def payment_sync(*, order: Order, close_unpaid: bool = True) -> SyncReport:
    """Ask the gateway about every open attempt of `order`.

    A paid attempt is applied exactly like a notify; an unpaid one is closed at the
    gateway (and locally) when `close_unpaid`, so it cannot be paid after we give up.
    """
    report = SyncReport()
    open_attempts = list(order.payments.filter(status=Payment.Status.CREATED, channel__in=GATEWAY_CHANNELS))
    for payment in open_attempts:
        gateway = get_gateway(payment.channel)
        try:
            state = gateway.query(out_trade_no=payment.out_trade_no)
            if not state.paid and close_unpaid:
                result = gateway.close(out_trade_no=payment.out_trade_no)
                if result.already_paid:
                    state = gateway.query(out_trade_no=payment.out_trade_no)
                elif result.closed:
                    with transaction.atomic():
                        _lock_order(payment.order_id)
                        locked = Payment.objects.select_for_update().get(pk=payment.pk)
                        if locked.status == Payment.Status.CREATED:
                            locked.close(at=timezone.now())
                            locked.last_synced_at = timezone.now()
                            locked.save()
                    report.closed += 1
                    continue
        except GatewayError as err:
            logger.warning("payment_sync: %s %s", payment.out_trade_no, err)
            report.errors += 1
            continue
        if state.paid:
            with transaction.atomic():
                _apply_success(
                    channel=payment.channel,
                    out_trade_no=payment.out_trade_no,
                    amount=state.amount if state.amount is not None else payment.amount,
                    gateway_trade_no=state.gateway_trade_no,
                    paid_at=state.paid_at,
                    merchant_id=state.merchant_id or gateway.merchant_id,
                    app_id=state.app_id or gateway.app_id,
                    inbox=None,
                    source="query",
                )
            report.applied += 1
        else:
            Payment.objects.filter(pk=payment.pk).update(last_synced_at=timezone.now())
            report.still_open += 1
    return report


def payments_stale(*, older_than: timedelta, limit: int = 200, now: datetime | None = None) -> list[int]:
    """Order ids with an attempt open longer than `older_than` and no notify yet (补单 candidates)."""
    now = now or timezone.now()
    rows = (
        Payment.objects.filter(
            status=Payment.Status.CREATED,
            channel__in=GATEWAY_CHANNELS,
            created_at__lte=now - older_than,
            notifications__isnull=True,
        )
        .filter(Q(last_synced_at__isnull=True) | Q(last_synced_at__lte=now - older_than))
        .order_by("created_at")
        .values_list("order_id", flat=True)[: limit * 2]
    )
    return list(dict.fromkeys(rows))[:limit]


# --- refunds -------------------------------------------------------------------------


def refundable_amount(payment: Payment) -> Decimal:
    taken = payment.refunds.aggregate(total=Sum("amount"))["total"] or ZERO
    return payment.amount - taken


def refund_request(
    *,
    order: Order,
    amount: Decimal,
    reason: str,
    actor: Actor,
    payment: Payment | None = None,
    out_refund_no: str | None = None,
    auto_approve: bool = False,
) -> Refund:
    """Ask for `amount` to go back through the route it came in by.

    Capped: the refunds of a payment never add up to more than the payment, nor those of
    an order to more than it was paid. `out_refund_no` is fixed here and reused by every
    retry, which is what makes the gateway's own idempotency work for us.
    """
    with transaction.atomic():
        order = _lock_order(order.pk)
        if out_refund_no:
            existing = Refund.objects.filter(out_refund_no=out_refund_no).first()
            if existing is not None:
                return existing
        if amount <= ZERO:
            raise ValidationFailed(fields={"amount": [_("退款金额必须大于0")]})
        succeeded = order.payments.filter(status=Payment.Status.SUCCEEDED).order_by("paid_at", "pk")
        if payment is None:
            payment = next((p for p in succeeded if refundable_amount(p) >= amount), None)
            if payment is None:
                raise RefundNotAllowed(details={"requested": str(amount)})
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        order_refunds = order.refunds.aggregate(total=Sum("amount"))["total"] or ZERO
        if amount > refundable_amount(payment) or order_refunds + amount > order.paid_total:
            raise RefundNotAllowed(
                details={
                    "requested": str(amount),
                    "refundable": str(min(refundable_amount(payment), order.paid_total - order_refunds)),
                }
            )
        refund = Refund.objects.create(
            order=order,
            payment=payment,
            amount=amount,
            reason=reason,
            requested_by=actor.label,
            out_refund_no=out_refund_no or f"{payment.out_trade_no}R{payment.refunds.count() + 1:02d}",
        )
        order_event_record(
            order=order,
            type=OrderEvent.Type.REFUND_REQUESTED,
            actor=actor,
            reason=reason,
            out_refund_no=refund.out_refund_no,
            amount=str(amount),
        )
        if auto_approve:
            refund.approve(by=None, at=timezone.now())
            refund.save()
            _queue_refund_execution(refund)
    return refund


def refund_request_full(*, order: Order, reason: str, actor: Actor, suffix: str = "C") -> Refund | None:
    """Everything still refundable on a cancelled order, through each original route.

    Called inside order_cancel's transaction. Money recorded on the order without a
    payment row (entered by hand) becomes one refund with no gateway route, for
    finance to pay back and mark done. Each refund writes one refund_requested event.
    Returns the last refund created (or None).
    """
    last = None
    for payment in order.payments.filter(status=Payment.Status.SUCCEEDED).order_by("pk"):
        remaining = refundable_amount(payment)
        if remaining > ZERO:
            last = refund_request(
                order=order,
                payment=payment,
                amount=remaining,
                reason=reason,
                actor=actor,
                out_refund_no=f"{payment.out_trade_no}R{suffix}",
            )
    already = order.refunds.aggregate(total=Sum("amount"))["total"] or ZERO
    rest = order.paid_total - already
    if rest > ZERO:
        last, created = Refund.objects.get_or_create(
            out_refund_no=f"RF{order.order_no}{suffix}",
            defaults={"order": order, "amount": rest, "reason": reason, "requested_by": actor.label},
        )
        if created:
            order_event_record(
                order=order,
                type=OrderEvent.Type.REFUND_REQUESTED,
                actor=actor,
                reason=reason,
                out_refund_no=last.out_refund_no,
                amount=str(rest),
            )
    return last


def refund_approve(*, refund: Refund, user) -> Refund:
    """Finance approves; needs payments.approve_refund. Execution is queued after commit."""
    if not user.has_perm("payments.approve_refund"):
        raise PermissionDenied("payments.approve_refund")
    with transaction.atomic():
        order = _lock_order(refund.order_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status != Refund.Status.REQUESTED:
            raise InvalidTransition(details={"status": refund.status, "action": "approve_refund"})
        refund.approve(by=user, at=timezone.now())
        refund.save()
        order_event_record(
            order=order,
            type=OrderEvent.Type.REFUND_APPROVED,
            actor=Actor.staff(user),
            out_refund_no=refund.out_refund_no,
        )
        _queue_refund_execution(refund)
    return refund


def _queue_refund_execution(refund: Refund) -> None:
    from .tasks import execute_refund

    transaction.on_commit(lambda: execute_refund.delay(refund.pk))


def refund_execute(*, refund_id: int) -> Refund:
    """Send an approved (or failed, for a retry) refund to the gateway with its fixed out_refund_no."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update(of=("self",)).select_related("payment").get(pk=refund_id)
        if refund.status not in (Refund.Status.APPROVED, Refund.Status.FAILED, Refund.Status.PROCESSING):
            return refund
        if refund.status != Refund.Status.PROCESSING:
            refund.start()
            refund.save()
    payment = refund.payment
    if payment is None or payment.channel not in GATEWAY_CHANNELS:
        return refund  # bank transfer / COD: finance pays back by hand and marks it done
    result = get_gateway(payment.channel).refund(
        out_trade_no=payment.out_trade_no,
        out_refund_no=refund.out_refund_no,
        amount=refund.amount,
        total=payment.amount,
        reason=refund.reason,
    )
    if result.status == "succeeded":
        return refund_mark_succeeded(refund=refund, gateway_refund_no=result.gateway_refund_no)
    if result.status == "failed":
        return refund_mark_failed(refund=refund, error=result.error)
    return refund  # processing: the gateway's refund notice will finish it


def refunds_stuck(*, older_than: timedelta, limit: int = 100, now: datetime | None = None) -> list[int]:
    """Refunds approved or processing at a gateway for longer than `older_than` (re-delivery job)."""
    now = now or timezone.now()
    return list(
        Refund.objects.filter(
            status__in=[Refund.Status.APPROVED, Refund.Status.PROCESSING],
            payment__channel__in=GATEWAY_CHANNELS,
            updated_at__lte=now - older_than,
        )
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )


def refund_mark_succeeded(*, refund: Refund, gateway_refund_no: str = "", actor: Actor | None = None) -> Refund:
    """The money left: count it on the order, once."""
    with transaction.atomic():
        order = _lock_order(refund.order_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status != Refund.Status.PROCESSING:
            return refund
        refund.succeed(gateway_refund_no=gateway_refund_no, at=timezone.now())
        refund.save()
        Order.objects.filter(pk=order.pk).update(refunded_total=order.refunded_total + refund.amount)
        order.refunded_total += refund.amount
        order_event_record(
            order=order,
            type=OrderEvent.Type.REFUND_SUCCEEDED,
            actor=actor or Actor.system("refund"),
            out_refund_no=refund.out_refund_no,
            amount=str(refund.amount),
        )
    return refund


def refund_mark_paid_by_hand(*, refund: Refund, user) -> Refund:
    """Finance paid a refund back outside any gateway (bank transfer, cash on delivery, or money
    recorded by hand with no payment row) and says so. Gateway refunds finish only by the gateway.
    """
    if refund.payment_id is not None and refund.payment.channel in GATEWAY_CHANNELS:
        raise InvalidTransition(_("渠道退款只能由支付渠道确认"), details={"out_refund_no": refund.out_refund_no})
    return refund_mark_succeeded(refund=refund, actor=Actor.staff(user))


def refund_mark_failed(*, refund: Refund, error: str) -> Refund:
    with transaction.atomic():
        order = _lock_order(refund.order_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status != Refund.Status.PROCESSING:
            return refund
        refund.fail(error=error)
        refund.save()
        order_event_record(
            order=order, type=OrderEvent.Type.REFUND_FAILED, actor=Actor.system("refund"), reason=error[:200]
        )
        case_open(
            type=CaseType.REFUND_FAILED,
            dedupe_key=f"refund_failed:{refund.out_refund_no}:{refund.attempts}",
            summary=_("退款 %(no)s 失败：%(e)s") % {"no": refund.out_refund_no, "e": error},
            order=order,
            payment=refund.payment,
            refund=refund,
            expected_amount=refund.amount,
        )
    return refund


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


# --- bank transfer and cash on delivery ----------------------------------------------

ORDER_NO_IN_TEXT = re.compile(r"(?<![0-9])([0-9]{18})(?![0-9])")


def bank_transfer_record(
    *, payer: str, amount: Decimal, remark: str, received_at: datetime, bank_reference: str, user=None
) -> BankTransfer:
    """对公转账: match by the order number in the remark and the exact amount; else a case."""
    with transaction.atomic():
        if BankTransfer.objects.filter(bank_reference=bank_reference).exists():
            return BankTransfer.objects.get(bank_reference=bank_reference)
        numbers = ORDER_NO_IN_TEXT.findall(remark or "")
        candidates = list(Order.objects.filter(order_no__in=numbers).values_list("pk", flat=True))
        transfer = BankTransfer(
            payer=payer,
            amount=amount,
            remark=remark,
            received_at=received_at,
            bank_reference=bank_reference,
            recorded_by=user,
            status=BankTransfer.Status.UNMATCHED,
        )
        problem = ""
        if len(candidates) != 1:
            problem = _("附言中没有唯一的订单号") if not candidates else _("附言中有多个订单号")
        else:
            order = _lock_order(candidates[0])
            if order.status != OrderStatus.PENDING_PAYMENT:
                problem = _("订单 %(no)s 不在待付款状态") % {"no": order.order_no}
            elif amount != order.payable_total:
                problem = _("金额不符：应付 %(e)s，到账 %(a)s") % {"e": order.payable_total, "a": amount}
            else:
                payment = Payment.objects.create(
                    order=order,
                    channel=Channel.BANK_TRANSFER,
                    out_trade_no=f"BT{bank_reference}"[:64],
                    amount=amount,
                )
                payment.succeed(trade_no=bank_reference, at=received_at)
                payment.save()
                transfer.payment = payment
                transfer.status = BankTransfer.Status.MATCHED
                actor = Actor.staff(user) if user is not None else Actor.system("bank_transfer")
                order_pay(order=order, amount=amount, actor=actor, at=received_at, bank_reference=bank_reference)
        transfer.save()
        if problem:
            case_open(
                type=CaseType.UNMATCHED_TRANSFER,
                dedupe_key=f"transfer:{bank_reference}",
                summary=_("未匹配的对公转账：%(p)s %(a)s 元，%(why)s") % {"p": payer, "a": amount, "why": problem},
                channel=Channel.BANK_TRANSFER,
                actual_amount=amount,
                payer=payer,
                remark=remark,
                bank_reference=bank_reference,
            )
    return transfer


def cod_collect(*, order: Order, amount: Decimal, actor: Actor, at: datetime | None = None) -> Payment:
    """货到付款: the carrier collected the money on delivery. Counted as a payment."""
    at = at or timezone.now()
    with transaction.atomic():
        order = _lock_order(order.pk)
        if order.payment_method != Channel.COD or order.status not in (
            OrderStatus.AWAITING_SHIPMENT,
            OrderStatus.SHIPPED,
            OrderStatus.COMPLETED,
        ):
            raise InvalidTransition(details={"status": order.status, "action": "cod_collect"})
        existing = order.payments.filter(channel=Channel.COD, status=Payment.Status.SUCCEEDED).first()
        if existing is not None:
            return existing
        payment = Payment.objects.create(
            order=order, channel=Channel.COD, out_trade_no=f"{order.order_no}COD", amount=amount
        )
        payment.succeed(trade_no="", at=at)
        payment.save()
        _record_extra_money(order=order, payment=payment, actor=actor, note="cash on delivery collected")
        if amount != order.payable_total:
            case_open(
                type=CaseType.AMOUNT_MISMATCH,
                dedupe_key=f"cod:{order.order_no}",
                summary=_("货到付款金额不符：应收 %(e)s，实收 %(a)s") % {"e": order.payable_total, "a": amount},
                channel=Channel.COD,
                order=order,
                payment=payment,
                expected_amount=order.payable_total,
                actual_amount=amount,
            )
    return payment
