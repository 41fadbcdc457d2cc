"""Reads that are reused: which orders a rule is due for, an order's messages, today's
reminders of an order (the duplicate warning), and the operations report. All set-based.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, DateTimeField, Exists, F, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import ExtractHour, TruncDate
from django.utils import timezone

from orders.models import Order, OrderStatus, PaymentMethod
from payments.models import Payment

from . import conf
from .models import ManualReminder, Purpose, Reminder, ReminderRule

ACTIVE_OR_SENT = [Reminder.Status.SENDING, Reminder.Status.SENT]


def orders_due_for_rule(*, rule: ReminderRule, now: datetime, limit: int) -> list[tuple[int, datetime]]:
    """(order id, due time) for orders the rule is due for and that have no reminder of it yet.

    One query whatever the number of orders: bounded to orders created within
    OMS_REMINDER_LOOKBACK_HOURS, and to due times no older than OMS_REMINDER_MAX_LATENESS_MINUTES.
    Closed notices are not scanned: the timeout sweep queues them (reminders_notify_closed).
    """
    offset = timedelta(minutes=rule.offset_minutes)
    earliest_due = now - conf.max_lateness()
    orders = Order.objects.filter(created_at__gte=now - conf.lookback()).filter(
        ~Exists(Reminder.objects.filter(order=OuterRef("pk"), rule=rule))
    )
    if rule.order_types:
        orders = orders.filter(order_type__in=rule.order_types)
    if rule.purpose == Purpose.PAYMENT_REMINDER:
        # Cash on delivery is paid at the door: nothing to remind.
        orders = orders.filter(status=OrderStatus.PENDING_PAYMENT, payment_deadline__gt=now).exclude(
            payment_method=PaymentMethod.COD
        )
    elif rule.purpose == Purpose.CONFIRMATION:
        # Paid already is fine (not a 催付); shipped or cancelled is too late for a confirmation.
        orders = orders.filter(
            status__in=[OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.AWAITING_SHIPMENT]
        )

    Kind = ReminderRule.Kind
    if rule.kind == Kind.AFTER_CREATED:
        rows = orders.filter(created_at__lte=now - offset, created_at__gte=earliest_due - offset).order_by("created_at")
        found = rows.values_list("pk", "created_at")[:limit]
        return [(pk, created + offset) for pk, created in found]
    if rule.kind == Kind.BEFORE_DEADLINE:
        rows = orders.filter(payment_deadline__lte=now + offset).order_by("payment_deadline")
        found = rows.values_list("pk", "payment_deadline", "created_at")[:limit]
        return [(pk, max(deadline - offset, created)) for pk, deadline, created in found]
    if rule.kind == Kind.AFTER_PAYMENT_STARTED:
        latest_attempt = (
            Payment.objects.filter(order=OuterRef("pk")).order_by("-created_at", "-id").values("created_at")
        )
        rows = (
            orders.annotate(started=Subquery(latest_attempt[:1], output_field=DateTimeField()))
            .filter(started__lte=now - offset, started__gte=earliest_due - offset)
            .order_by("started")
        )
        return [(pk, started + offset) for pk, started in rows.values_list("pk", "started")[:limit]]
    return []


def order_messages(*, order: Order) -> QuerySet[Reminder]:
    """What was sent to the customer about this order, oldest first (the storefront's message list)."""
    return order.reminders.filter(status=Reminder.Status.SENT).order_by("sent_at", "id")


@dataclass(frozen=True)
class ReminderToday:
    at: datetime
    manual: bool
    channel: str
    detail: str


def day_start(at: datetime) -> datetime:
    local = timezone.localtime(at)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def order_reminders_today(*, order_id: int, now: datetime | None = None) -> list[ReminderToday]:
    """催付 of this order since local midnight, automatic (sent or being sent) and manual."""
    since = day_start(now or timezone.now())
    automatic = (
        Reminder.objects.filter(
            order_id=order_id, purpose=Purpose.PAYMENT_REMINDER, status__in=ACTIVE_OR_SENT, claimed_at__gte=since
        )
        .select_related("rule")
        .order_by("claimed_at")
    )
    manual = (
        ManualReminder.objects.filter(order_id=order_id, created_at__gte=since)
        .select_related("created_by")
        .order_by("created_at")
    )
    found = [
        ReminderToday(at=r.sent_at or r.claimed_at, manual=False, channel=r.get_channel_display(), detail=r.rule.name)
        for r in automatic
    ] + [
        ReminderToday(
            at=m.created_at,
            manual=True,
            channel=m.get_channel_display(),
            detail=f"{m.created_by.get_username() if m.created_by else ''} {m.get_outcome_display()}".strip(),
        )
        for m in manual
    ]
    return sorted(found, key=lambda item: item.at)


# --- the operations report ------------------------------------------------------------


def _rate(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass
class HourRow:
    hour: int
    sent: int = 0
    paid_after: int = 0  # payments whose last preceding reminder went out in this hour

    @property
    def rate(self) -> Decimal | None:
        return _rate(self.paid_after, self.sent)


@dataclass
class ReminderReport:
    start: date
    end: date
    orders: int = 0
    paid: int = 0
    closed_unpaid: int = 0
    still_pending: int = 0
    reminded: int = 0
    recovered: int = 0
    manual_reminded: int = 0
    manual_recovered: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    outcomes_by_day: dict[date, dict[str, int]] = field(default_factory=dict)
    outcome_totals: dict[str, int] = field(default_factory=dict)
    hours: list[HourRow] = field(default_factory=list)

    @property
    def unpaid(self) -> int:
        return self.orders - self.paid

    @property
    def unpaid_rate(self) -> Decimal | None:
        return _rate(self.unpaid, self.orders)

    @property
    def recovery_rate(self) -> Decimal | None:
        return _rate(self.recovered, self.reminded)

    @property
    def manual_recovery_rate(self) -> Decimal | None:
        return _rate(self.manual_recovered, self.manual_reminded)

    @property
    def best_hours(self) -> list[HourRow]:
        """The hours after whose reminders most customers went on to pay (at least one payment)."""
        ranked = [row for row in self.hours if row.paid_after]
        return sorted(ranked, key=lambda row: (-row.paid_after, -(row.rate or 0), row.hour))[:3]


def reminder_report(*, start: date, end: date) -> ReminderReport:
    """Orders created from `start` to `end` (local dates, inclusive); a fixed number of aggregate queries."""
    tz = timezone.get_current_timezone()
    since = timezone.make_aware(datetime.combine(start, time.min), tz)
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), tz)
    report = ReminderReport(start=start, end=end)
    orders = Order.objects.filter(created_at__gte=since, created_at__lt=until).exclude(payment_method=PaymentMethod.COD)

    totals = orders.aggregate(
        orders=Count("pk"),
        paid=Count("pk", filter=Q(paid_at__isnull=False)),
        closed_unpaid=Count("pk", filter=Q(status=OrderStatus.CANCELLED, paid_at__isnull=True)),
        still_pending=Count("pk", filter=Q(status=OrderStatus.PENDING_PAYMENT)),
    )
    report.orders, report.paid = totals["orders"], totals["paid"]
    report.closed_unpaid, report.still_pending = totals["closed_unpaid"], totals["still_pending"]

    automatic = orders.annotate(
        first_reminded=Min(
            "reminders__sent_at",
            filter=Q(reminders__purpose=Purpose.PAYMENT_REMINDER, reminders__status=Reminder.Status.SENT),
        )
    ).filter(first_reminded__isnull=False)
    recovery = automatic.aggregate(
        reminded=Count("pk"), recovered=Count("pk", filter=Q(paid_at__gt=F("first_reminded")))
    )
    report.reminded, report.recovered = recovery["reminded"], recovery["recovered"]

    manual = orders.annotate(first_called=Min("manual_reminders__created_at")).filter(first_called__isnull=False)
    recovery = manual.aggregate(reminded=Count("pk"), recovered=Count("pk", filter=Q(paid_at__gt=F("first_called"))))
    report.manual_reminded, report.manual_recovered = recovery["reminded"], recovery["recovered"]

    reminders = Reminder.objects.filter(order__in=orders)
    report.status_counts = dict(
        reminders.order_by().values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    report.skip_reasons = dict(
        reminders.filter(status=Reminder.Status.SKIPPED)
        .order_by()
        .values_list("skip_reason")
        .annotate(n=Count("pk"))
        .values_list("skip_reason", "n")
    )

    calls = (
        ManualReminder.objects.filter(created_at__gte=since, created_at__lt=until)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .order_by()
        .values_list("day", "outcome")
        .annotate(n=Count("pk"))
    )
    for day, outcome, n in calls:
        report.outcomes_by_day.setdefault(day, {})[outcome] = n
        report.outcome_totals[outcome] = report.outcome_totals.get(outcome, 0) + n
    report.outcomes_by_day = dict(sorted(report.outcomes_by_day.items()))

    # The reminder that preceded a payment is the last one sent before paid_at.
    later_before_payment = Reminder.objects.filter(
        order=OuterRef("order"),
        purpose=Purpose.PAYMENT_REMINDER,
        status=Reminder.Status.SENT,
        sent_at__gt=OuterRef("sent_at"),
        sent_at__lt=OuterRef("order__paid_at"),
    )
    sent = (
        reminders.filter(purpose=Purpose.PAYMENT_REMINDER, status=Reminder.Status.SENT)
        .annotate(
            hour=ExtractHour("sent_at", tzinfo=tz),
            superseded=Exists(later_before_payment),
        )
        .order_by()
        .values_list("hour")
        .annotate(
            sent=Count("pk"),
            paid_after=Count("pk", filter=Q(order__paid_at__gt=F("sent_at"), superseded=False)),
        )
        .values_list("hour", "sent", "paid_after")
    )
    by_hour = {hour: HourRow(hour=hour, sent=n, paid_after=paid) for hour, n, paid in sent}
    report.hours = [by_hour.get(hour, HourRow(hour=hour)) for hour in range(24)]
    return report
