"""After-sales fixtures: delivered, paid orders (a real payment row, bank transfer, so refunds run
the whole real path: finance approves, executes, and marks the transfer back as paid)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User

from fulfillment.models import Shipment
from fulfillment.services import shipment_deliver
from orders.events import Actor
from orders.models import Order
from payments.models import Refund
from payments.services import refund_approve, refund_execute, refund_mark_paid_by_hand
from tests.fulfillment.conftest import guangzhou, hangzhou, order_for, stocked  # noqa: F401 (fixtures)
from tests.fulfillment.factories import ship_whole_order
from tests.payments.ledger_factories import succeeded_payment

SYSTEM = Actor.system("test")


@pytest.fixture
def staff(db):
    def make(group: str) -> User:
        user = User.objects.create_user(f"u{User.objects.count()}-{group}", password="x", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        return User.objects.get(pk=user.pk)

    return make


@pytest.fixture
def kefu(staff):
    return Actor.staff(staff("客服"))


@pytest.fixture
def cangchu(staff):
    return Actor.staff(staff("仓储"))


@pytest.fixture
def caiwu(staff):
    return staff("财务")


def paid_order(lines, **kw) -> Order:
    order = order_for(lines, **kw)
    succeeded_payment(order, channel="bank_transfer")
    order.refresh_from_db()
    return order


def delivered_order(lines, **kw) -> Order:
    order = paid_order(lines, **kw)
    ship_whole_order(order, actor=SYSTEM)
    for shipment in Shipment.objects.filter(lines__order_id=order.pk).distinct():
        shipment_deliver(shipment=shipment, actor=SYSTEM, at=shipment.shipped_at)
    order.refresh_from_db()
    return order


def pay_back(out_refund_no: str, finance_user) -> Refund:
    """Finance's part: approve, execute (a bank transfer has no gateway), mark it paid back."""
    refund = Refund.objects.get(out_refund_no=out_refund_no)
    refund_approve(refund=refund, user=finance_user)
    refund = refund_execute(refund_id=refund.pk)
    return refund_mark_paid_by_hand(refund=refund, user=finance_user)


def money(value: str) -> Decimal:
    return Decimal(value)
