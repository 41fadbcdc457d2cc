"""What the payment services share: the order row lock (always taken before the payment or
refund row) and counting money that arrived without moving the order.
"""

from __future__ import annotations

from orders.models import Order, OrderEvent
from orders.services import Actor, order_event_record, order_money_record

from ..models import Payment


def lock_order(order_id: int) -> Order:
    return Order.objects.select_for_update().get(pk=order_id)


def record_extra_money(*, order: Order, payment: Payment, actor: Actor, note: str) -> None:
    """Money arrived that does not move the order (late or second payment): count it anyway."""
    order_money_record(order=order, received=payment.amount)
    order_event_record(
        order=order,
        type=OrderEvent.Type.PAYMENT_RECEIVED,
        actor=actor,
        reason=note,
        out_trade_no=payment.out_trade_no,
        amount=str(payment.amount),
    )
