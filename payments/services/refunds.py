"""Refunds: requested, approved, executed through the original route, marked done once."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.errors import InvalidTransition, ValidationFailed, require_permission
from oms.jobs import enqueue_on_commit
from orders.models import ZERO, Order, OrderEvent
from orders.services import Actor, order_event_record, order_money_record

from ..errors import RefundNotAllowed
from ..gateways import get_gateway
from ..models import (
    GATEWAY_CHANNELS,
    Payment,
    ReconciliationCase,
    Refund,
)
from ..selectors import refundable_amount
from .cases import case_open
from .money import lock_order

logger = logging.getLogger(__name__)
CaseType = ReconciliationCase.Type


# --- refunds -------------------------------------------------------------------------


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
        order = lock_order(order.pk)
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
    require_permission(user, "payments.approve_refund")
    with transaction.atomic():
        order = lock_order(refund.order_id)
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


def refund_retry(*, refund: Refund, user) -> Refund:
    """Send a failed refund to the gateway again, with the same out_refund_no (so the gateway
    cannot pay it twice). Needs payments.approve_refund, like approving it did.
    """
    require_permission(user, "payments.approve_refund")
    with transaction.atomic():
        order = lock_order(refund.order_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status != Refund.Status.FAILED:
            raise InvalidTransition(
                _("只有失败的退款可以重试"), details={"status": refund.status, "action": "retry_refund"}
            )
        order_event_record(
            order=order,
            type=OrderEvent.Type.REFUND_APPROVED,
            actor=Actor.staff(user),
            reason=str(_("重试退款")),
            out_refund_no=refund.out_refund_no,
        )
        _queue_refund_execution(refund)
    return refund


EXECUTE_REFUND_TASK = "payments.tasks.execute_refund"


def _queue_refund_execution(refund: Refund) -> None:
    enqueue_on_commit(EXECUTE_REFUND_TASK, refund.pk)


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


def refund_mark_succeeded(*, refund: Refund, gateway_refund_no: str = "", actor: Actor | None = None) -> Refund:
    """The money left: count it on the order, once."""
    with transaction.atomic():
        order = lock_order(refund.order_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status != Refund.Status.PROCESSING:
            return refund
        refund.succeed(gateway_refund_no=gateway_refund_no, at=timezone.now())
        refund.save()
        order_money_record(order=order, refunded=refund.amount)
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
    require_permission(user, "payments.approve_refund")
    if refund.payment_id is not None and refund.payment.channel in GATEWAY_CHANNELS:
        raise InvalidTransition(_("渠道退款只能由支付渠道确认"), details={"out_refund_no": refund.out_refund_no})
    if refund.status != Refund.Status.PROCESSING:
        raise InvalidTransition(details={"status": refund.status, "action": "mark_paid_by_hand"})
    return refund_mark_succeeded(refund=refund, actor=Actor.staff(user))


def refund_mark_failed(*, refund: Refund, error: str) -> Refund:
    with transaction.atomic():
        order = lock_order(refund.order_id)
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
