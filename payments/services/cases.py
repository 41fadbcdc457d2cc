"""Finance cases (对账差异): opened once per dedupe key, assigned, resolved."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.utils import timezone

from oms.errors import require_permission
from orders.models import Order, OrderEvent
from orders.services import Actor, order_event_record

from ..models import (
    Payment,
    PaymentNotification,
    ReconciliationCase,
    Refund,
)

logger = logging.getLogger(__name__)


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
    require_permission(user, "payments.change_reconciliationcase")
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
