"""The after-sales side of check_ledger: no order line refunded above its net amount."""

from __future__ import annotations

from django.db.models import F, Sum
from django.utils.translation import gettext as _

from payments.ledger import LedgerBreach

from .models import AftersaleLine, AftersaleStatus


def aftersale_line_breaches() -> list[LedgerBreach]:
    """One aggregate query: per order line, the refunds of requests that refunded or are
    refunding, against the line's net amount (line_total − discount)."""
    rows = (
        AftersaleLine.objects.filter(aftersale__status__in=[AftersaleStatus.REFUNDING, AftersaleStatus.COMPLETED])
        .values("order_line_id", "order_line__sku_code", "order_line__order__order_no")
        .annotate(refunded=Sum("refund_amount"), net=F("order_line__line_total") - F("order_line__discount"))
        .filter(refunded__gt=F("net"))
        .order_by()
    )
    return [
        LedgerBreach(
            code="line_over_refunded",
            message=_("订单 %(o)s 的 %(s)s 退款 %(r)s 超过该行实付 %(n)s")
            % {
                "o": row["order_line__order__order_no"],
                "s": row["order_line__sku_code"],
                "r": row["refunded"],
                "n": row["net"],
            },
            order_no=row["order_line__order__order_no"],
            expected=row["net"],
            actual=row["refunded"],
        )
        for row in rows
    ]
