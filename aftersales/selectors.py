"""Reads the after-sales screens share: the queue's deadline as a column the database can sort,
the refund preview the inspection form shows before anyone confirms, and the report.

Every function here is a fixed number of queries, whatever the number of rows.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    ExpressionWrapper,
    F,
    Max,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.utils import timezone

from fulfillment.models import SHIPPED_STATUSES, Shipment, ShipmentKind, ShipmentLine
from orders.models import OrderLine

from .models import (
    OPEN_STATUSES,
    Aftersale,
    AftersaleLine,
    AftersaleReason,
    AftersaleStatus,
    AftersaleType,
    Responsibility,
)

# The same count of already-refunded units the refund itself starts from, so the preview and
# the refund cannot drift apart.
from .services import _units_refunded, line_refund_amount

A = AftersaleStatus
ZERO = Decimal("0.00")
CENT = Decimal("0.01")


# --- the queue ----------------------------------------------------------------------------------


def aftersales_with_due(queryset: QuerySet[Aftersale]) -> QuerySet[Aftersale]:
    """Annotate `due`: what aftersales.services.aftersale_deadline says, as SQL, so the queue can
    sort by it (a return that reached the warehouse is due its delivery + OMS_AFTERSALE_RECEIVE_DAYS)."""
    receive = timedelta(days=settings.OMS_AFTERSALE_RECEIVE_DAYS)
    return queryset.annotate(
        due=Case(
            When(
                status=A.RETURN_SHIPPED,
                return_shipment__isnull=False,
                then=ExpressionWrapper(F("return_shipment__delivered_at") + receive, output_field=DateTimeField()),
            ),
            default=F("deadline"),
            output_field=DateTimeField(),
        )
    )


# --- the inspection form's refund preview -------------------------------------------------------


@dataclass
class PreviewLine:
    line: AftersaleLine
    accepted: int
    amount: Decimal


@dataclass
class RefundPreview:
    lines: list[PreviewLine]
    goods: Decimal
    shipping: Decimal
    freight: Decimal
    compensation: Decimal
    refundable: Decimal  # what is left of the order's payment
    total: Decimal

    @property
    def capped(self) -> bool:
        return self.total < self.goods + self.shipping + self.freight + self.compensation


def aftersale_unit_amounts(aftersale: Aftersale) -> dict[int, list[str]]:
    """For each line (by pk): the refund for accepting 0, 1, … n of its units, exact to the cent,
    for the form's live preview."""
    lines = list(aftersale.lines.select_related("order_line"))
    done = _units_refunded([ln.order_line_id for ln in lines])
    return {
        ln.pk: [
            str(line_refund_amount(ln.order_line, unit_from=done.get(ln.order_line_id, 0), units=k))
            for k in range(ln.quantity + 1)
        ]
        for ln in lines
    }


def aftersale_refund_preview(
    *, aftersale: Aftersale, accepted: dict[int, int], return_freight: Decimal | None = None
) -> RefundPreview:
    """What aftersales.services.aftersale_receive will refund if these units (by line pk) are
    accepted: their exact share of each line's net amount, the shipping fee if staff chose it
    at approval, the return freight up to OMS_RETURN_FREIGHT_CAP for a seller-fault request,
    never more than is left of the payment."""
    order = aftersale.order
    lines = list(aftersale.lines.select_related("order_line"))
    done = _units_refunded([ln.order_line_id for ln in lines])
    rows = []
    for ln in lines:
        units = accepted.get(ln.pk, 0)
        start = done.get(ln.order_line_id, 0)
        amount = line_refund_amount(ln.order_line, unit_from=start, units=units) if units else ZERO
        rows.append(PreviewLine(line=ln, accepted=units, amount=amount))
        done[ln.order_line_id] = start + units
    goods = sum((row.amount for row in rows), ZERO)
    shipping = order.shipping_fee if aftersale.refund_shipping else ZERO
    freight = ZERO
    if return_freight and aftersale.responsibility == Responsibility.SELLER:
        freight = min(Decimal(return_freight), settings.OMS_RETURN_FREIGHT_CAP).quantize(CENT)
    already = order.refunds.aggregate(total=Sum("amount"))["total"] or ZERO
    refundable = order.paid_total - already
    total = min(goods + shipping + freight + aftersale.compensation_amount, refundable)
    return RefundPreview(
        lines=rows,
        goods=goods,
        shipping=shipping,
        freight=freight,
        compensation=aftersale.compensation_amount,
        refundable=refundable,
        total=max(total, ZERO),
    )


# --- the report ---------------------------------------------------------------------------------


@dataclass
class RateRow:
    key: str
    label: str
    requests: int = 0
    units: int = 0
    sold: int = 0
    refunded: Decimal = ZERO

    @property
    def rate(self) -> Decimal | None:
        """Units in requests per 100 units sold."""
        if not self.sold:
            return None
        return (Decimal(self.units * 100) / self.sold).quantize(Decimal("0.1"))


@dataclass
class CarrierRow:
    carrier: str
    label: str
    damaged: int
    parcels: int

    @property
    def rate(self) -> Decimal | None:
        """Damage requests per 1000 parcels shipped."""
        if not self.parcels:
            return None
        return (Decimal(self.damaged * 1000) / self.parcels).quantize(Decimal("0.1"))


@dataclass
class AftersaleReport:
    start: date
    end: date
    requests: int = 0
    units_sold: int = 0
    units_requested: int = 0
    by_sku: list[RateRow] = field(default_factory=list)
    by_reason: list[RateRow] = field(default_factory=list)
    by_responsibility: list[RateRow] = field(default_factory=list)
    by_type: list[dict] = field(default_factory=list)
    refunded: Decimal = ZERO
    refunding: Decimal = ZERO
    resolved: int = 0
    resolve_median_hours: float | None = None
    resolve_avg_hours: float | None = None
    escalated: int = 0
    closed_timeout: int = 0
    overdue_now: int = 0
    damage_by_carrier: list[CarrierRow] = field(default_factory=list)

    @property
    def rate(self) -> Decimal | None:
        if not self.units_sold:
            return None
        return (Decimal(self.units_requested * 100) / self.units_sold).quantize(Decimal("0.1"))


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    return datetime.combine(start, time.min, tzinfo=tz), datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)


def aftersale_report(*, start: date, end: date, now: datetime | None = None, top_skus: int = 20) -> AftersaleReport:
    """Requests opened from `start` to `end` (local dates, inclusive) against units of orders
    paid in the same days. Units in requests leave out 补差 (no goods move); a request counts
    whatever became of it, since a rejected one is still a customer with a problem."""
    now = now or timezone.now()
    since, until = _bounds(start, end)
    report = AftersaleReport(start=start, end=end)
    requests = Aftersale.objects.filter(created_at__gte=since, created_at__lt=until)
    goods_lines = AftersaleLine.objects.filter(
        aftersale__created_at__gte=since, aftersale__created_at__lt=until
    ).exclude(aftersale__type=AftersaleType.COMPENSATION)

    # Units sold and units in requests, per SKU.
    sold = {
        row["sku_code"]: row
        for row in OrderLine.objects.filter(order__paid_at__gte=since, order__paid_at__lt=until)
        .values("sku_code")
        .annotate(units=Sum("quantity"), name=Max("name"))
        .order_by()
    }
    report.units_sold = sum(row["units"] for row in sold.values())
    claimed = (
        goods_lines.values("order_line__sku_code")
        .annotate(units=Sum("quantity"), requests=Count("aftersale", distinct=True), name=Max("order_line__name"))
        .order_by()
    )
    rows = [
        RateRow(
            key=row["order_line__sku_code"],
            label=row["name"],
            requests=row["requests"],
            units=row["units"],
            sold=sold.get(row["order_line__sku_code"], {}).get("units", 0),
        )
        for row in claimed
    ]
    report.units_requested = sum(row.units for row in rows)
    rows.sort(key=lambda row: (-(row.rate or 0), -row.units, row.key))
    report.by_sku = rows[:top_skus]

    # By reason and by responsibility: requests, units, money back.
    for attr, choices, column in (
        ("by_reason", AftersaleReason, "reason"),
        ("by_responsibility", Responsibility, "responsibility"),
    ):
        counts = {
            row[column]: row
            for row in requests.values(column)
            .annotate(n=Count("id"), refunded=Sum("refunded_amount", filter=Q(status=A.COMPLETED)))
            .order_by()
        }
        units = dict(goods_lines.values_list(f"aftersale__{column}").annotate(units=Sum("quantity")).order_by())
        setattr(
            report,
            attr,
            [
                RateRow(
                    key=value,
                    label=str(label),
                    requests=counts.get(value, {}).get("n", 0),
                    units=units.get(value, 0),
                    sold=report.units_sold,
                    refunded=counts.get(value, {}).get("refunded") or ZERO,
                )
                for value, label in choices.choices
            ],
        )
    report.requests = sum(row.requests for row in report.by_reason)

    # Money by type.
    by_type = {
        row["type"]: row
        for row in requests.values("type")
        .annotate(
            n=Count("id"),
            refunded=Sum("refunded_amount", filter=Q(status=A.COMPLETED)),
            refunding=Sum("refund_amount", filter=Q(status=A.REFUNDING)),
        )
        .order_by()
    }
    report.by_type = [
        {
            "key": value,
            "label": str(label),
            "n": by_type.get(value, {}).get("n", 0),
            "refunded": by_type.get(value, {}).get("refunded") or ZERO,
            "refunding": by_type.get(value, {}).get("refunding") or ZERO,
        }
        for value, label in AftersaleType.choices
    ]
    report.refunded = sum((row["refunded"] for row in report.by_type), ZERO)
    report.refunding = sum((row["refunding"] for row in report.by_type), ZERO)

    # Time to resolve: from request to 已完成.
    hours = [
        (completed - created).total_seconds() / 3600
        for created, completed in requests.filter(status=A.COMPLETED, completed_at__isnull=False).values_list(
            "created_at", "completed_at"
        )
    ]
    report.resolved = len(hours)
    if hours:
        report.resolve_median_hours = round(statistics.median(hours), 1)
        report.resolve_avg_hours = round(statistics.fmean(hours), 1)

    # Deadline breaches.
    breaches = requests.aggregate(
        escalated=Count("id", filter=Q(escalated=True)), closed=Count("id", filter=Q(status=A.CLOSED))
    )
    report.escalated, report.closed_timeout = breaches["escalated"], breaches["closed"]
    report.overdue_now = (
        aftersales_with_due(Aftersale.objects.filter(status__in=OPEN_STATUSES)).filter(due__lt=now).count()
    )

    # Damage in transit by the carrier of the parcel that took the goods out.
    damaged = dict(
        ShipmentLine.objects.filter(
            shipment__kind=ShipmentKind.ORDER,
            shipment__status__in=SHIPPED_STATUSES,
            order_line__aftersale_lines__aftersale__reason=AftersaleReason.DAMAGED_IN_TRANSIT,
            order_line__aftersale_lines__aftersale__created_at__gte=since,
            order_line__aftersale_lines__aftersale__created_at__lt=until,
        )
        .values_list("shipment__carrier")
        .annotate(n=Count("order_line__aftersale_lines__aftersale", distinct=True))
        .order_by()
    )
    parcels = dict(
        Shipment.objects.filter(kind=ShipmentKind.ORDER, shipped_at__gte=since, shipped_at__lt=until)
        .values_list("carrier")
        .annotate(n=Count("id"))
        .order_by()
    )
    labels = dict(Shipment._meta.get_field("carrier").choices)
    report.damage_by_carrier = sorted(
        (
            CarrierRow(carrier=c, label=str(labels.get(c, c or "—")), damaged=n, parcels=parcels.get(c, 0))
            for c, n in damaged.items()
        ),
        key=lambda row: (-row.damaged, row.carrier),
    )
    return report
