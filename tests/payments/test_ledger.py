"""The ledger invariants: a consistent book passes; each kind of breakage is named and
makes `manage.py check_ledger` fail.
"""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F

from orders.models import Order
from payments.ledger import check_ledger
from payments.models import ReconciliationCase, Refund
from payments.services import case_open

from .ledger_factories import new_order, refund_of, succeeded_payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_order(storefront, tshirt):
    def make(**kwargs) -> Order:
        return new_order(storefront=storefront, sku=tshirt, **kwargs)

    return make


def codes() -> list[str]:
    return sorted(breach.code for breach in check_ledger())


def run_command() -> str:
    out = StringIO()
    call_command("check_ledger", stdout=out)
    return out.getvalue()


def open_overpaid_case(order: Order) -> ReconciliationCase:
    return case_open(
        type=ReconciliationCase.Type.OVERPAID,
        dedupe_key=f"overpaid:test:{order.order_no}",
        summary="重复支付",
        order=order,
    )


@pytest.fixture
def consistent_book(make_order):
    """Paid, partly refunded, with a failed refund retried; and a double payment with its case."""
    paid = make_order()
    payment = succeeded_payment(paid)
    refund_of(payment, amount=Decimal("20.00"), n=1)
    refund_of(payment, amount=Decimal("10.00"), n=2, status=Refund.Status.FAILED)
    twice = make_order(payment_method="wechatpay")
    succeeded_payment(twice, channel="wechatpay", n=1)
    succeeded_payment(twice, channel="wechatpay", n=2)
    open_overpaid_case(twice)
    make_order()  # unpaid
    return paid, twice


def test_consistent_ledger_passes(consistent_book):
    assert check_ledger() == []
    assert "OK" in run_command()


def test_paid_total_off_is_reported_and_fails_the_command(consistent_book):
    paid, _twice = consistent_book
    Order.objects.filter(pk=paid.pk).update(paid_total=F("paid_total") + Decimal("0.01"))
    breaches = check_ledger()
    assert sorted(b.code for b in breaches) == ["net_mismatch", "paid_total_mismatch"]
    assert {b.order_no for b in breaches} == {paid.order_no}
    with pytest.raises(CommandError, match="2"):
        run_command()


def test_refunded_total_off_names_the_refund_side(consistent_book):
    paid, _twice = consistent_book
    Order.objects.filter(pk=paid.pk).update(refunded_total=F("refunded_total") - Decimal("5.00"))
    assert codes() == ["net_mismatch", "refunded_total_mismatch"]


def test_both_sides_off_by_the_same_amount_keeps_the_net_but_is_still_reported(consistent_book):
    paid, _twice = consistent_book
    Order.objects.filter(pk=paid.pk).update(
        paid_total=F("paid_total") + Decimal("7.00"), refunded_total=F("refunded_total") + Decimal("7.00")
    )
    assert codes() == ["paid_total_mismatch", "refunded_total_mismatch"]


def test_refund_larger_than_its_payment_fails(make_order):
    order = make_order()
    payment = succeeded_payment(order)
    refund_of(payment, amount=payment.amount + Decimal("1.00"), status=Refund.Status.REQUESTED)
    assert codes() == ["refund_exceeds_payment", "refunds_exceed_payment"]
    with pytest.raises(CommandError):
        run_command()


def test_refunds_of_a_payment_add_up_past_it_counting_failed_ones(make_order):
    order = make_order()
    payment = succeeded_payment(order)
    refund_of(payment, amount=payment.amount - Decimal("1.00"), n=1, status=Refund.Status.FAILED)
    refund_of(payment, amount=Decimal("2.00"), n=2, status=Refund.Status.APPROVED)
    assert codes() == ["refunds_exceed_payment"]
    (breach,) = check_ledger()
    assert breach.out_trade_no == payment.out_trade_no
    assert breach.actual == payment.amount + Decimal("1.00")


def test_two_payments_without_an_overpaid_case_fail_until_the_case_exists(make_order):
    order = make_order()
    succeeded_payment(order, n=1)
    succeeded_payment(order, n=2)
    assert codes() == ["paid_twice_without_case"]
    with pytest.raises(CommandError):
        run_command()

    case = open_overpaid_case(order)
    ReconciliationCase.objects.filter(pk=case.pk).update(status=ReconciliationCase.Status.RESOLVED)
    assert check_ledger() == []
    assert "OK" in run_command()


def test_a_late_payment_with_its_paid_after_close_case_is_explained(make_order):
    order = make_order()
    succeeded_payment(order, n=1)
    late = succeeded_payment(order, n=2)
    case_open(
        type=ReconciliationCase.Type.PAID_AFTER_CLOSE,
        dedupe_key=f"late:{late.out_trade_no}",
        summary="关单后付款",
        order=order,
        payment=late,
    )
    assert check_ledger() == []

    succeeded_payment(order, n=3)  # a third one is not explained by the late case
    assert codes() == ["paid_twice_without_case"]


def test_the_check_is_a_fixed_number_of_queries(consistent_book, make_order, django_assert_max_num_queries):
    for _ in range(5):
        order = make_order()
        payment = succeeded_payment(order)
        refund_of(payment, amount=Decimal("1.00"))
    with django_assert_max_num_queries(4):
        assert check_ledger() == []
