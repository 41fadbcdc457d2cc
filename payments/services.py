from __future__ import annotations

from decimal import Decimal

from .models import Refund


def refund_request_full(*, order, reason: str, requested_by: str, suffix: str = "C") -> Refund | None:
    """Ask for everything still refundable on `order` to go back through the original route.

    Called inside the caller's transaction with the order row locked. The refund number
    is deterministic (order number + suffix), so a retried cancel cannot ask twice.
    """
    amount: Decimal = order.paid_total - order.refunded_total
    if amount <= 0:
        return None
    refund, _ = Refund.objects.get_or_create(
        out_refund_no=f"RF{order.order_no}{suffix}",
        defaults={
            "order": order,
            "amount": amount,
            "reason": reason,
            "requested_by": requested_by,
        },
    )
    return refund
