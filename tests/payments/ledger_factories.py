"""Orders with money on them, built with the ORM and the payment/refund transitions.

The order's running totals are booked the way the services book them (order_pay for the
first payment, an F() update for anything after), so a test starts from a consistent
ledger and breaks it on purpose.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import F
from django.utils import timezone

from inventory.models import Sku
from orders import services as order_services
from orders.models import Order, OrderStatus, Storefront
from orders.services import Actor
from payments.models import Payment, Refund
from tests.orders.factories import OrderFactory


def new_order(*, storefront: Storefront, sku: Sku, payment_method: str = "alipay") -> Order:
    return OrderFactory(
        storefront=storefront,
        payload__lines=[{"sku": sku.code, "quantity": 3}],
        payload__payment_method=payment_method,
    )


def succeeded_payment(
    order: Order,
    *,
    n: int = 1,
    channel: str = "alipay",
    amount: Decimal | None = None,
    at: datetime | None = None,
    book: bool = True,
) -> Payment:
    """A payment that succeeded at `at`; `book` adds it to the order's paid_total."""
    at = at or timezone.now()
    payment = Payment.objects.create(
        order=order,
        channel=channel,
        out_trade_no=f"{order.order_no}P{n:02d}",
        amount=order.payable_total if amount is None else amount,
    )
    payment.succeed(trade_no=f"GW{payment.out_trade_no}", at=at)
    payment.save()
    if book:
        fresh = Order.objects.get(pk=order.pk)
        if fresh.status == OrderStatus.PENDING_PAYMENT and payment.amount == fresh.payable_total:
            order_services.order_pay(order=fresh, amount=payment.amount, actor=Actor.gateway(channel), at=at)
        else:
            Order.objects.filter(pk=order.pk).update(paid_total=F("paid_total") + payment.amount)
    return payment


def refund_of(
    payment: Payment,
    *,
    amount: Decimal,
    n: int = 1,
    status: str = Refund.Status.SUCCEEDED,
    at: datetime | None = None,
    book: bool = True,
) -> Refund:
    """A refund of `payment` driven through its transitions to `status`; a success is booked on the order."""
    at = at or timezone.now()
    refund = Refund.objects.create(
        order_id=payment.order_id,
        payment=payment,
        out_refund_no=f"{payment.out_trade_no}R{n:02d}",
        amount=amount,
        reason="测试退款",
        requested_by="test",
    )
    if status != Refund.Status.REQUESTED:
        refund.approve(by=None, at=at)
    if status in (Refund.Status.PROCESSING, Refund.Status.SUCCEEDED, Refund.Status.FAILED):
        refund.start()
    if status == Refund.Status.SUCCEEDED:
        refund.succeed(gateway_refund_no=f"GWR{refund.out_refund_no}", at=at)
    if status == Refund.Status.FAILED:
        refund.fail(error="渠道余额不足")
    refund.save()
    if status == Refund.Status.SUCCEEDED and book:
        Order.objects.filter(pk=payment.order_id).update(refunded_total=F("refunded_total") + amount)
    return refund
