"""Refund retry is a service, and the refund actions in the admin report what really happened."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from oms.errors import InvalidTransition
from orders import services as order_services
from orders.models import Order
from payments import services
from payments.models import Refund
from workflows.cancellation import order_cancel

SYSTEM = order_services.Actor.system("test")


@pytest.fixture
def cancelled_paid_order(create_order):
    order = Order.objects.get(order_no=create_order()["order_no"])
    order_services.order_pay(order=order, amount=order.payable_total, actor=SYSTEM)
    return order_cancel(order=order, actor=SYSTEM, reason="changed_mind")


def failed_refund(order: Order) -> Refund:
    refund = Refund.objects.get(order=order)
    Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.FAILED, last_error="timeout")
    refund.refresh_from_db()
    return refund


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_retry_queues_the_same_refund_after_commit(
    cancelled_paid_order, admin_user, refunds_queued, django_capture_on_commit_callbacks
):
    refund = failed_refund(cancelled_paid_order)
    with django_capture_on_commit_callbacks(execute=True):
        services.refund_retry(refund=refund, user=admin_user)
    assert refunds_queued == [refund.pk]
    refund.refresh_from_db()
    assert refund.out_refund_no.endswith("C")  # the same number goes to the gateway again
    assert cancelled_paid_order.events.filter(reason="重试退款").exists()


def test_retry_refuses_a_refund_that_did_not_fail(cancelled_paid_order, admin_user, refunds_queued):
    refund = Refund.objects.get(order=cancelled_paid_order)
    with pytest.raises(InvalidTransition):
        services.refund_retry(refund=refund, user=admin_user)
    assert refunds_queued == []


def test_retry_needs_the_approval_permission(cancelled_paid_order, django_user_model, refunds_queued):
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    with pytest.raises(PermissionDenied):
        services.refund_retry(refund=failed_refund(cancelled_paid_order), user=clerk)
    assert refunds_queued == []


def test_bulk_approve_counts_only_what_it_approved(create_order, admin_client, admin_user, refunds_queued):
    order = Order.objects.get(order_no=create_order()["order_no"])
    services.bank_transfer_record(
        payer="某公司",
        amount=order.payable_total,
        remark=order.order_no,
        received_at=timezone.now(),
        bank_reference="B1",
    )
    first = services.refund_request(order=order, amount=Decimal("10.00"), reason="部分退款", actor=SYSTEM)
    second = services.refund_request(order=order, amount=Decimal("5.00"), reason="部分退款", actor=SYSTEM)
    services.refund_approve(refund=second, user=admin_user)
    confirm = admin_client.post(
        "/admin/payments/refund/", {"action": "approve", "_selected_action": [first.pk, second.pk]}
    )
    page = confirm.content.decode()  # a confirmation first: what goes back, nothing approved yet
    assert "确认审批" in page and first.out_refund_no in page and "¥15.00" in page
    first.refresh_from_db()
    assert first.status == "requested"
    response = admin_client.post(
        "/admin/payments/refund/",
        {"action": "approve", "confirm": "yes", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    shown = messages_of(response)
    assert any(second.out_refund_no in line for line in shown)  # already approved: refused, named
    assert any("已审批 1 笔退款" in line and "1 条未处理" in line for line in shown)
    first.refresh_from_db()
    assert first.status == "approved"
