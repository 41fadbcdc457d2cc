"""货到付款结算: the carrier's COD settlement file, matched parcel by parcel.

Each row says a carrier collected `amount` for a tracking number. The parcel must be one of
ours, cash on delivery. Money not yet recorded is recorded now (payments.cod_collect, the same
as a 签收 push does); money already recorded is checked; an amount that differs from what the
parcel was to collect opens a finance case and records nothing. Idempotent: importing the
same file again changes nothing. Each row is its own transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from django.db import models, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from oms.errors import DomainError, ValidationFailed
from orders.events import Actor
from orders.models import Order
from orders.services import orders_lock
from payments.models import Payment, ReconciliationCase
from payments.services import case_open, cod_collect

from .imports import cell_text, table_read
from .models import SHIPPED_STATUSES, Shipment

COLUMNS = {
    "tracking_no": ("tracking_no", "运单号", "快递单号", "物流单号"),
    "amount": ("amount", "代收金额", "代收货款", "货款", "金额"),
}


class CodRowStatus(models.TextChoices):
    COLLECTED = "collected", gettext_lazy("已入账")
    UNCHANGED = "unchanged", gettext_lazy("已入账过，金额一致")
    MISMATCH = "mismatch", gettext_lazy("金额不符，已转财务复核")
    ERROR = "error", gettext_lazy("失败")


@dataclass(frozen=True)
class CodRowResult:
    row: int
    tracking_no: str
    status: str
    message: str = ""

    @property
    def status_display(self) -> str:
        return str(CodRowStatus(self.status).label)


def cod_settlement_rows_read(file: IO[bytes], *, name: str) -> list[dict[str, Any]]:
    table = table_read(file, name=name)
    names = [cell_text(c).lower() for c in table[0]]
    columns = {}
    for key, aliases in COLUMNS.items():
        found = next((i for i, n in enumerate(names) if n in aliases), None)
        if found is None:
            raise ValidationFailed(
                fields={"file": [_("第一行缺少列：%(c)s（需要 运单号 tracking_no、代收金额 amount）") % {"c": key}]}
            )
        columns[key] = found
    return [
        {"row": number, **{key: cell_text(cells[i]) if i < len(cells) else "" for key, i in columns.items()}}
        for number, cells in enumerate(table[1:], start=2)
        if any(cell_text(c) for c in cells)
    ]


def cod_settlement_import(*, rows: Iterable[Mapping[str, Any]], actor: Actor) -> list[CodRowResult]:
    """Match a carrier's COD settlement rows; one result per row, in order (finance: 财务)."""
    actor.require("payments.record_offline_payment")
    results = []
    for row in rows:
        number, tracking_no = int(row.get("row", 0)), str(row.get("tracking_no", "")).strip().upper()
        try:
            results.append(_settle_row(number, tracking_no, row.get("amount"), actor))
        except DomainError as error:
            results.append(CodRowResult(number, tracking_no, CodRowStatus.ERROR, error.message))
    return results


def _settle_row(number: int, tracking_no: str, raw_amount: Any, actor: Actor) -> CodRowResult:
    try:
        amount = Decimal(str(raw_amount).replace(",", "").replace("¥", "")).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return CodRowResult(number, tracking_no, CodRowStatus.ERROR, _("代收金额不是数字：%(v)s") % {"v": raw_amount})
    parcel = Shipment.objects.filter(tracking_no=tracking_no, is_cod=True, status__in=SHIPPED_STATUSES).first()
    if parcel is None or not parcel.cod_amounts:
        return CodRowResult(number, tracking_no, CodRowStatus.ERROR, _("没有这个已发出的货到付款包裹"))
    expected = sum((Decimal(v) for v in parcel.cod_amounts.values()), Decimal("0.00"))
    with transaction.atomic():
        orders = {o.order_no: o for o in orders_lock(order_ids=list(_order_ids(parcel)))}
        collected = Payment.objects.filter(
            order__order_no__in=list(parcel.cod_amounts), channel="cod", status=Payment.Status.SUCCEEDED
        )
        already = sum((p.amount for p in collected), Decimal("0.00"))
        if amount != expected:
            case_open(
                type=ReconciliationCase.Type.AMOUNT_MISMATCH,
                dedupe_key=f"cod-settlement:{tracking_no}:{amount}",
                summary=_("货到付款结算金额不符：包裹 %(no)s 应收 %(e)s，快递结算 %(a)s")
                % {"no": tracking_no, "e": expected, "a": amount},
                channel="cod",
                order=next(iter(orders.values()), None),
                expected_amount=expected,
                actual_amount=amount,
            )
            return CodRowResult(
                number, tracking_no, CodRowStatus.MISMATCH, _("应收 %(e)s，结算 %(a)s") % {"e": expected, "a": amount}
            )
        if already == expected:
            return CodRowResult(number, tracking_no, CodRowStatus.UNCHANGED)
        for order_no, due in parcel.cod_amounts.items():
            cod_collect(order=orders[order_no], amount=Decimal(due), actor=actor)
    return CodRowResult(number, tracking_no, CodRowStatus.COLLECTED)


def _order_ids(parcel: Shipment) -> set[int]:
    return set(Order.objects.filter(order_no__in=list(parcel.cod_amounts)).values_list("pk", flat=True))
