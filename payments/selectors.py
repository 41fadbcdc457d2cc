"""Read queries of the payments app that more than one place uses."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from orders.models import ZERO

from .models import GATEWAY_CHANNELS, Payment, Refund


def refundable_amount(payment: Payment) -> Decimal:
    taken = payment.refunds.aggregate(total=Sum("amount"))["total"] or ZERO
    return payment.amount - taken


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


def payments_open_at_gateway() -> QuerySet[Payment]:
    """For Exists(): the order (OuterRef "pk") has an attempt still open at a gateway."""
    return Payment.objects.filter(order_id=OuterRef("pk"), status=Payment.Status.CREATED, channel__in=GATEWAY_CHANNELS)


def payments_paid_or_open() -> QuerySet[Payment]:
    """For Exists(): the order (OuterRef "pk") was paid, or may still be paid at a gateway."""
    return Payment.objects.filter(order_id=OuterRef("pk")).filter(
        Q(status=Payment.Status.SUCCEEDED) | Q(status=Payment.Status.CREATED, channel__in=GATEWAY_CHANNELS)
    )
