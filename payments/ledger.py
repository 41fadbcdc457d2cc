"""Ledger invariants: the order's money columns agree with the payment and refund rows.

`Order.paid_total` / `refunded_total` are denormalised running totals written by the
services; the payment and refund rows are the truth. `check_ledger` finds every place
where they disagree, where refunds could take out more than came in, and where an
order was paid twice without finance having a case for it. Each check is one
aggregate query, so the cost does not grow per order in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, DecimalField, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Abs, Coalesce
from django.utils.translation import gettext as _

from orders.models import ZERO, Order

from .models import MONEY, Payment, ReconciliationCase, Refund

# SQLite adds decimals as floats; half a cent tells a rounding artefact from a real breach.
TOLERANCE = Decimal("0.005")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class LedgerBreach:
    code: str
    message: str
    order_no: str = ""
    out_trade_no: str = ""
    out_refund_no: str = ""
    expected: Decimal | None = None
    actual: Decimal | None = None

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


def _sum_per(rows: QuerySet, group: str) -> Coalesce:
    """SUM(amount) of `rows` (already filtered on OuterRef) as a correlated subquery; 0 if none."""
    total = rows.order_by().values(group).annotate(total=Sum("amount")).values("total")[:1]
    return Coalesce(Subquery(total), Value(ZERO), output_field=DecimalField(**MONEY))


def _money(value: Decimal) -> Decimal:
    return Decimal(value).quantize(CENT)


def _order_totals() -> list[LedgerBreach]:
    """paid_total and refunded_total against the succeeded rows, each side and the net."""
    succeeded_payments = Payment.objects.filter(order=OuterRef("pk"), status=Payment.Status.SUCCEEDED)
    succeeded_refunds = Refund.objects.filter(order=OuterRef("pk"), status=Refund.Status.SUCCEEDED)
    rows = (
        Order.objects.order_by()
        .annotate(
            payments_sum=_sum_per(succeeded_payments, "order"),
            refunds_sum=_sum_per(succeeded_refunds, "order"),
        )
        .annotate(
            paid_off=Abs(F("paid_total") - F("payments_sum")),
            refunded_off=Abs(F("refunded_total") - F("refunds_sum")),
        )
        .filter(Q(paid_off__gt=TOLERANCE) | Q(refunded_off__gt=TOLERANCE))
        .values_list("order_no", "paid_total", "refunded_total", "payments_sum", "refunds_sum")
        .order_by("pk")
    )
    breaches = []
    for order_no, paid_total, refunded_total, payments_sum, refunds_sum in rows:
        paid_total, refunded_total = _money(paid_total), _money(refunded_total)
        payments_sum, refunds_sum = _money(payments_sum), _money(refunds_sum)
        if paid_total - refunded_total != payments_sum - refunds_sum:
            breaches.append(
                LedgerBreach(
                    code="net_mismatch",
                    message=_("订单 %(no)s 净额不符：订单记 %(o)s（已付-已退），支付/退款记录合计 %(r)s")
                    % {"no": order_no, "o": paid_total - refunded_total, "r": payments_sum - refunds_sum},
                    order_no=order_no,
                    expected=payments_sum - refunds_sum,
                    actual=paid_total - refunded_total,
                )
            )
        if paid_total != payments_sum:
            breaches.append(
                LedgerBreach(
                    code="paid_total_mismatch",
                    message=_("订单 %(no)s 已付金额 %(o)s 与成功支付合计 %(r)s 不符")
                    % {"no": order_no, "o": paid_total, "r": payments_sum},
                    order_no=order_no,
                    expected=payments_sum,
                    actual=paid_total,
                )
            )
        if refunded_total != refunds_sum:
            breaches.append(
                LedgerBreach(
                    code="refunded_total_mismatch",
                    message=_("订单 %(no)s 已退金额 %(o)s 与成功退款合计 %(r)s 不符")
                    % {"no": order_no, "o": refunded_total, "r": refunds_sum},
                    order_no=order_no,
                    expected=refunds_sum,
                    actual=refunded_total,
                )
            )
    return breaches


def _refunds_within_payments() -> list[LedgerBreach]:
    """Every refund of a payment counts, failed ones too: a failed refund may be retried."""
    breaches = []
    oversized = (
        Refund.objects.filter(amount__gt=F("payment__amount") + TOLERANCE)
        .values_list("out_refund_no", "amount", "payment__out_trade_no", "payment__amount", "order__order_no")
        .order_by("pk")
    )
    for out_refund_no, amount, out_trade_no, payment_amount, order_no in oversized:
        breaches.append(
            LedgerBreach(
                code="refund_exceeds_payment",
                message=_("退款 %(r)s 金额 %(a)s 大于原支付 %(p)s 的金额 %(pa)s")
                % {"r": out_refund_no, "a": _money(amount), "p": out_trade_no, "pa": _money(payment_amount)},
                order_no=order_no,
                out_trade_no=out_trade_no,
                out_refund_no=out_refund_no,
                expected=_money(payment_amount),
                actual=_money(amount),
            )
        )
    refunds = Refund.objects.filter(payment=OuterRef("pk"))
    overdrawn = (
        Payment.objects.order_by()
        .filter(Exists(refunds))
        .annotate(refunds_sum=_sum_per(refunds, "payment"))
        .filter(refunds_sum__gt=F("amount") + TOLERANCE)
        .values_list("out_trade_no", "amount", "refunds_sum", "order__order_no")
        .order_by("pk")
    )
    for out_trade_no, amount, refunds_sum, order_no in overdrawn:
        breaches.append(
            LedgerBreach(
                code="refunds_exceed_payment",
                message=_("支付 %(p)s 的退款合计 %(s)s（含失败待重试的）大于支付金额 %(a)s")
                % {"p": out_trade_no, "s": _money(refunds_sum), "a": _money(amount)},
                order_no=order_no,
                out_trade_no=out_trade_no,
                expected=_money(amount),
                actual=_money(refunds_sum),
            )
        )
    return breaches


def _double_payments() -> list[LedgerBreach]:
    """≥ 2 succeeded payments need an overpaid case; a late payment with its paid_after_close case is explained."""
    explained = ReconciliationCase.objects.filter(type=ReconciliationCase.Type.PAID_AFTER_CLOSE, payment=OuterRef("pk"))
    overpaid_case = ReconciliationCase.objects.filter(type=ReconciliationCase.Type.OVERPAID, order=OuterRef("order_id"))
    rows = (
        Payment.objects.order_by()
        .filter(status=Payment.Status.SUCCEEDED)
        .filter(~Exists(explained))
        .filter(~Exists(overpaid_case))
        .values("order_id", "order__order_no")
        .annotate(payments=Count("pk"), total=Sum("amount"))
        .filter(payments__gte=2)
        .order_by("order_id")
    )
    return [
        LedgerBreach(
            code="paid_twice_without_case",
            message=_("订单 %(no)s 有 %(n)s 笔成功支付（合计 %(t)s），但没有「重复支付」差异单")
            % {"no": row["order__order_no"], "n": row["payments"], "t": _money(row["total"])},
            order_no=row["order__order_no"],
            actual=_money(row["total"]),
        )
        for row in rows
    ]


def check_ledger() -> list[LedgerBreach]:
    """Every ledger breach, grouped by invariant. Empty means the books agree."""
    return [*_order_totals(), *_refunds_within_payments(), *_double_payments()]
