"""Cancelling crosses two apps: the order's side alone must never keep a paid customer's money."""

from __future__ import annotations

import pytest

from oms.errors import RefundRequired
from orders import services as order_services
from orders.events import Actor
from orders.models import Order, OrderEvent
from payments.models import Refund
from workflows.cancellation import order_cancel

STAFF = Actor.system("test")


@pytest.fixture
def paid_order(create_order):
    order = Order.objects.get(order_no=create_order()["order_no"])
    return order_services.order_pay(order=order, amount=order.payable_total, actor=STAFF)


def test_the_orders_side_alone_refuses_a_paid_order_and_changes_nothing(paid_order):
    events_before = paid_order.events.count()
    with pytest.raises(RefundRequired) as raised:
        order_services.order_cancel(order=paid_order, actor=STAFF, reason="changed_mind")
    assert raised.value.code == "refund_required"
    paid_order.refresh_from_db()
    assert paid_order.status == "awaiting_shipment"
    assert paid_order.events.count() == events_before
    assert paid_order.lines.get().reservations.get().status == "active"


def test_the_workflow_cancels_and_requests_the_full_refund_in_one_transaction(paid_order):
    order_cancel(order=paid_order, actor=STAFF, reason="changed_mind")
    paid_order.refresh_from_db()
    assert paid_order.status == "cancelled"
    refund = Refund.objects.get(order=paid_order)
    assert refund.amount == paid_order.payable_total
    types = list(paid_order.events.values_list("type", flat=True))
    assert types[-2:] == [OrderEvent.Type.CANCEL, OrderEvent.Type.REFUND_REQUESTED]


def test_a_refused_refund_rolls_the_cancellation_back(paid_order, monkeypatch):
    import workflows.cancellation as cancellation

    def refuse(**kwargs):
        raise RuntimeError("gateway route unavailable")

    monkeypatch.setattr(cancellation, "refund_request_full", refuse)
    with pytest.raises(RuntimeError):
        order_cancel(order=paid_order, actor=STAFF, reason="changed_mind")
    paid_order.refresh_from_db()
    assert paid_order.status == "awaiting_shipment"
    assert not paid_order.events.filter(type=OrderEvent.Type.CANCEL).exists()


def test_an_unpaid_order_cancels_without_a_refund(create_order):
    order = Order.objects.get(order_no=create_order()["order_no"])
    order_cancel(order=order, actor=STAFF, reason="changed_mind")
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert not Refund.objects.filter(order=order).exists()
