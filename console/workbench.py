"""The workbench (工作台): the queues that need someone, for the roles that can work them.

Each queue is a queryset and the admin list that shows exactly the same rows (so the count on
the workbench is the count on the list), the age of its oldest item and, where there is one,
the soonest deadline as a countdown. A user sees the queues whose permission they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.db.models import Count, Min, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from aftersales.models import OPEN_STATUSES as AFTERSALE_OPEN
from aftersales.models import Aftersale
from fulfillment.models import OPEN_STATUSES as PARCEL_OPEN
from fulfillment.models import LogisticsException, Shipment
from orders.holds import HOLDABLE
from orders.models import Order, OrderStatus, PaymentMethod
from payments.models import ReconciliationCase, Refund
from reminders.models import ManualReminder


@dataclass(frozen=True)
class Queue:
    key: str
    title: str
    permission: str
    admin_url: str  # admin:<app>_<model>_changelist
    rows: Callable[[datetime], QuerySet]
    params: Callable[[datetime], dict[str, str]]
    age_field: str
    deadline_field: str = ""


QUEUES = [
    Queue(
        "review",
        _("待人工审核"),
        "orders.review_order",
        "admin:orders_order_changelist",
        lambda now: Order.objects.filter(status=OrderStatus.PAID),
        lambda now: {"status__exact": OrderStatus.PAID},
        "paid_at",
    ),
    Queue(
        "held",
        _("挂起"),
        "orders.hold_order",
        "admin:orders_order_changelist",
        lambda now: Order.objects.filter(held_at__isnull=False, status__in=HOLDABLE),
        lambda now: {"held": "yes"},
        "held_at",
    ),
    Queue(
        "ship_overdue",
        _("超时未发货"),
        "fulfillment.view_shipment",
        "admin:fulfillment_shipment_changelist",
        lambda now: Shipment.objects.filter(status__in=PARCEL_OPEN, ship_by__lt=now),
        lambda now: {"status__in": ",".join(PARCEL_OPEN), "ship_by__lt": now.isoformat()},
        "ship_by",
        "ship_by",
    ),
    Queue(
        "logistics",
        _("物流异常"),
        "fulfillment.view_logisticsexception",
        "admin:fulfillment_logisticsexception_changelist",
        lambda now: LogisticsException.objects.filter(resolved_at__isnull=True),
        lambda now: {"resolved_at__isnull": "True"},
        "opened_at",
    ),
    Queue(
        "aftersales",
        _("售后待处理"),
        "aftersales.view_aftersale",
        "admin:aftersales_aftersale_changelist",
        lambda now: Aftersale.objects.filter(status__in=AFTERSALE_OPEN),
        lambda now: {"status__in": ",".join(AFTERSALE_OPEN)},
        "created_at",
        "deadline",
    ),
    Queue(
        "cases",
        _("对账异常"),
        "payments.view_reconciliationcase",
        "admin:payments_reconciliationcase_changelist",
        lambda now: ReconciliationCase.objects.filter(
            status__in=[ReconciliationCase.Status.OPEN, ReconciliationCase.Status.IN_PROGRESS]
        ),
        lambda now: {"status__in": f"{ReconciliationCase.Status.OPEN},{ReconciliationCase.Status.IN_PROGRESS}"},
        "created_at",
    ),
    Queue(
        "promised",
        _("承诺付款已过期"),
        "reminders.view_manualreminder",
        "admin:reminders_manualreminder_changelist",
        lambda now: ManualReminder.objects.filter(promised_pay_at__lt=now, order__status=OrderStatus.PENDING_PAYMENT),
        lambda now: {"promise": "overdue"},
        "promised_pay_at",
    ),
    Queue(
        "cod",
        _("货到付款待核实"),
        "orders.confirm_cod",
        "admin:orders_order_changelist",
        lambda now: Order.objects.filter(status=OrderStatus.PENDING_PAYMENT, payment_method=PaymentMethod.COD),
        lambda now: {"status__exact": OrderStatus.PENDING_PAYMENT, "payment_method__exact": PaymentMethod.COD},
        "created_at",
    ),
    Queue(
        "refunds",
        _("退款待审批"),
        "payments.approve_refund",
        "admin:payments_refund_changelist",
        lambda now: Refund.objects.filter(status=Refund.Status.REQUESTED),
        lambda now: {"status__exact": Refund.Status.REQUESTED},
        "created_at",
    ),
]


@dataclass(frozen=True)
class QueueView:
    key: str
    title: str
    count: int
    url: str
    oldest_at: datetime | None
    deadline: datetime | None
    now: datetime

    @property
    def age_hours(self) -> float | None:
        return (self.now - self.oldest_at).total_seconds() / 3600 if self.oldest_at else None

    @property
    def overdue(self) -> bool:
        return self.deadline is not None and self.deadline < self.now


def workbench_for(user, *, now: datetime | None = None) -> list[QueueView]:
    """The queues this user may work, each with its count, oldest item and soonest deadline.

    Two aggregate queries per visible queue (the count with the oldest, the deadline), none per row.
    """
    now = now or timezone.now()
    views = []
    for queue in QUEUES:
        if not user.has_perm(queue.permission):
            continue
        try:
            changelist = reverse(queue.admin_url)
        except NoReverseMatch:  # that list is not in the admin (yet): no queue without its list
            continue
        rows = queue.rows(now)
        aggregates = {"oldest": Min(queue.age_field)}
        if queue.deadline_field:
            aggregates["deadline"] = Min(queue.deadline_field)
        figures = rows.aggregate(count=Count("pk"), **aggregates)
        views.append(
            QueueView(
                key=queue.key,
                title=str(queue.title),
                count=figures["count"],
                url=f"{changelist}?{urlencode(queue.params(now))}",
                oldest_at=figures["oldest"],
                deadline=figures.get("deadline"),
                now=now,
            )
        )
    return views
