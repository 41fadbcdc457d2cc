"""Reads behind the operations dashboard: the unpaid rate by order hour and by province (seed 001
四), and fulfillment timeliness (paid → shipped hours by warehouse, ship-by breaches).

Each figure is one aggregate query over the date range, grouped in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, OuterRef, Q, Subquery
from django.db.models.functions import ExtractHour
from django.utils import timezone

from fulfillment.models import SHIPPED_STATUSES, Shipment, ShipmentKind, ShipmentLine
from orders.models import Order, PaymentMethod


@dataclass(frozen=True)
class RateRow:
    key: str
    orders: int
    unpaid: int

    @property
    def rate(self) -> float:
        if not self.orders:
            return 0.0
        return float((Decimal(self.unpaid * 100) / self.orders).quantize(Decimal("0.1"), ROUND_HALF_UP))


@dataclass(frozen=True)
class WarehouseTimeliness:
    warehouse: str
    shipped: int
    avg_hours: float
    max_hours: float
    late_shipped: int
    open_overdue: int


def _range(start: date, end: date) -> tuple[datetime, datetime]:
    zone = ZoneInfo(settings.TIME_ZONE)
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )


def _online_orders(start: date, end: date):
    since, until = _range(start, end)
    # Cash on delivery is never "unpaid" in this sense: the money comes at the door.
    return Order.objects.filter(created_at__gte=since, created_at__lt=until).exclude(payment_method=PaymentMethod.COD)


UNPAID = Q(paid_at__isnull=True)


def unpaid_rate_by_hour(*, start: date, end: date) -> list[RateRow]:
    """Orders created in each hour of the day (Asia/Shanghai) and how many were never paid."""
    rows = (
        _online_orders(start, end)
        .annotate(hour=ExtractHour("created_at", tzinfo=ZoneInfo(settings.TIME_ZONE)))
        .values("hour")
        .annotate(orders=Count("pk"), unpaid=Count("pk", filter=UNPAID))
        .order_by()
    )
    by_hour = {row["hour"]: row for row in rows}
    return [
        RateRow(
            key=f"{hour}", orders=by_hour.get(hour, {}).get("orders", 0), unpaid=by_hour.get(hour, {}).get("unpaid", 0)
        )
        for hour in range(24)
    ]


def unpaid_rate_by_province(*, start: date, end: date, limit: int = 34) -> list[RateRow]:
    rows = (
        _online_orders(start, end)
        .values("province")
        .annotate(orders=Count("pk"), unpaid=Count("pk", filter=UNPAID))
        .order_by("-orders")[:limit]
    )
    return [RateRow(key=row["province"], orders=row["orders"], unpaid=row["unpaid"]) for row in rows]


def fulfillment_timeliness(*, start: date, end: date, now: datetime | None = None) -> list[WarehouseTimeliness]:
    """Per warehouse: parcels shipped in the range, paid → shipped hours (from the order's
    approval, which follows payment at once unless the order waited for review), parcels shipped
    after their ship-by deadline, and open parcels already past it.
    """
    now = now or timezone.now()
    since, until = _range(start, end)
    approved = ShipmentLine.objects.filter(shipment=OuterRef("pk")).values("order__approved_at")[:1]
    took = ExpressionWrapper(F("shipped_at") - F("approved"), output_field=DurationField())
    shipped = (
        Shipment.objects.filter(
            kind=ShipmentKind.ORDER, status__in=SHIPPED_STATUSES, shipped_at__gte=since, shipped_at__lt=until
        )
        .annotate(approved=Subquery(approved))
        .values("warehouse__code")
        .annotate(
            shipped=Count("pk"),
            avg=Avg(took),
            longest=Max(took),
            late=Count("pk", filter=Q(ship_by__lt=F("shipped_at"))),
        )
        .order_by("warehouse__code")
    )
    open_overdue = dict(
        Shipment.objects.filter(kind=ShipmentKind.ORDER, status__in=["pending", "picking", "packed"], ship_by__lt=now)
        .values_list("warehouse__code")
        .annotate(n=Count("pk"))
        .order_by()
    )

    def hours(value) -> float:
        return round(value.total_seconds() / 3600, 1) if value else 0.0

    result = [
        WarehouseTimeliness(
            warehouse=row["warehouse__code"],
            shipped=row["shipped"],
            avg_hours=hours(row["avg"]),
            max_hours=hours(row["longest"]),
            late_shipped=row["late"],
            open_overdue=open_overdue.pop(row["warehouse__code"], 0),
        )
        for row in shipped
    ]
    result += [WarehouseTimeliness(code, 0, 0.0, 0.0, 0, n) for code, n in sorted(open_overdue.items())]
    return result
