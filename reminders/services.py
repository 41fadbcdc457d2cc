"""催付 and order messages: scheduling, sending, closed and fulfillment notices, manual 催付, opt-out.

How a message goes out (`reminders_send_due`, every minute):

1. **Schedule** (set-based): for each active rule, one SELECT finds the orders it is due
   for that have no reminder of it yet, one INSERT … ON CONFLICT DO NOTHING adds the rows.
   The unique (order, rule) constraint makes this safe to run twice or concurrently.
   Event notices are not scheduled here: the timeout sweep (closed notices) and the ship,
   deliver and merchant-cancel services (reminders_notify_orders) queue their rows inside
   their own transactions.
2. **Claim** (one transaction per batch): due `scheduled` rows are taken with
   SELECT … FOR UPDATE SKIP LOCKED, the customers' advisory locks (PostgreSQL) and then the
   orders are locked, and each row is checked again: order status, deadline, opt-out, the
   per-order and per-customer caps, the spacing between 催付, quiet hours. It is then
   skipped, moved to a later time, or claimed (status `sending`, text rendered) — all
   before any network call, so an overlapping run never sees it as due again.
3. **Deliver** (outside the transaction, so no lock is held during a network call): the
   channel sends; the row becomes `sent` (and the order's timeline gets an event), goes
   back to `scheduled` with a back-off, or becomes `failed`.

A row left in `sending` (the worker died mid-send) is marked failed after
OMS_REMINDER_SENDING_LEASE_MINUTES, never re-sent automatically: at most once per (order, rule).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.bulk import insert_per_id
from oms.errors import InvalidTransition, ValidationFailed, require_permission
from orders.models import Order, OrderEvent, OrderLine, OrderStatus
from orders.services import Actor, order_event_record

from . import conf, selectors
from .channels import ChannelError, OutboundMessage, channel_for
from .defaults import AFTERSALE_RULES, BUILTIN_RULES, NOTICE_RULES
from .models import Channel, CustomerContactPreference, ManualReminder, Purpose, Reminder, ReminderRule
from .rendering import RenderError, message_variables, provider_params, render

logger = logging.getLogger(__name__)

JOB = "send_due_reminders"
SkipReason = Reminder.SkipReason
# Key space for pg_advisory_xact_lock(int, int): (this constant, hashtext(mobile)).
CUSTOMER_LOCK_SPACE = 7_310_001
# Queued by the service that did the thing (reminders_notify_orders), never by the scheduler.
NOTICE_KINDS = {
    Purpose.SHIPPED_NOTICE: ReminderRule.Kind.AFTER_SHIPPED,
    Purpose.DELIVERED_NOTICE: ReminderRule.Kind.AFTER_DELIVERED,
    Purpose.CANCELLED_NOTICE: ReminderRule.Kind.AFTER_MERCHANT_CANCELLED,
    Purpose.AFTERSALE_APPROVED: ReminderRule.Kind.AFTER_AFTERSALE,
    Purpose.AFTERSALE_RETURN: ReminderRule.Kind.AFTER_AFTERSALE,
    Purpose.AFTERSALE_REJECTED: ReminderRule.Kind.AFTER_AFTERSALE,
    Purpose.AFTERSALE_REFUNDED: ReminderRule.Kind.AFTER_AFTERSALE,
}
AFTERSALE_PURPOSES = {
    Purpose.AFTERSALE_APPROVED,
    Purpose.AFTERSALE_RETURN,
    Purpose.AFTERSALE_REJECTED,
    Purpose.AFTERSALE_REFUNDED,
}
# Purposes whose message is pointless after the payment deadline (quiet hours may push it there).
DEADLINE_BOUND = {Purpose.PAYMENT_REMINDER, Purpose.CONFIRMATION}
# Purposes a customer's 退订 (opt-out) stops, besides 催付: the fulfillment notices are not
# needed to receive the goods (the storefront shows the parcels), so a customer who said
# "no more messages" gets none of them either. Confirmations and closed notices still go out.
# After-sales messages are not among them: the customer asked, and needs the answer (and the
# return address) whatever they opted out of.
OPT_OUT_PURPOSES = {Purpose.PAYMENT_REMINDER, *(set(NOTICE_KINDS) - AFTERSALE_PURPOSES)}


@dataclass
class SendReport:
    """What one run did. `scheduled` counts rows offered to INSERT … ON CONFLICT DO NOTHING."""

    scheduled: int = 0
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    retrying: int = 0
    failed: int = 0
    abandoned: int = 0
    batches: int = 0
    skip_reasons: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scheduled": self.scheduled,
            "sent": self.sent,
            "skipped": self.skipped,
            "deferred": self.deferred,
            "retrying": self.retrying,
            "failed": self.failed,
            "abandoned": self.abandoned,
            "batches": self.batches,
        }


# --- rules ------------------------------------------------------------------------------


def reminder_rules_install_builtin() -> int:
    """Create the built-in rules that are missing (matched by code). Returns how many were created."""
    created = 0
    for spec in [*BUILTIN_RULES, *NOTICE_RULES, *AFTERSALE_RULES]:
        defaults = {key: value for key, value in spec.items() if key != "code"}
        _, was_created = ReminderRule.objects.get_or_create(code=spec["code"], defaults=defaults)
        created += was_created
    return created


# --- scheduling -------------------------------------------------------------------------


def reminders_schedule(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Insert the reminder rows that are due; 1 + 2 queries per active rule, whatever the number of orders."""
    now = now or timezone.now()
    limit = limit or conf.schedule_limit()
    offered = 0
    rules = (
        ReminderRule.objects.filter(active=True)
        .exclude(kind__in=[ReminderRule.Kind.AFTER_CLOSED, *NOTICE_KINDS.values()])
        .order_by("pk")
    )
    for rule in rules:
        due = selectors.orders_due_for_rule(rule=rule, now=now, limit=limit)
        if due:
            Reminder.objects.bulk_create(
                [_new_reminder(rule=rule, order_id=order_id, due_at=due_at) for order_id, due_at in due],
                ignore_conflicts=True,
            )
            offered += len(due)
    return offered


def reminders_notify_closed(*, order_ids: list[int], now: datetime | None = None) -> int:
    """Queue the 订单已关闭 notice for orders the timeout sweep just closed.

    Meant to be called inside the sweep's transaction: one query for the rules and one
    INSERT … ON CONFLICT DO NOTHING per closed-notice rule (plus one SELECT when a rule is
    limited to some order types); no per-order query. Sending happens in send_due_reminders,
    which skips the notice if the order is no longer closed by then (a late payment revived it).
    Returns the number of rows offered (rows that already existed are left alone).
    """
    if not order_ids:
        return 0
    now = now or timezone.now()
    offered = 0
    for rule in ReminderRule.objects.filter(active=True, kind=ReminderRule.Kind.AFTER_CLOSED).order_by("pk"):
        ids = list(order_ids)
        if rule.order_types:
            ids = list(Order.objects.filter(pk__in=ids, order_type__in=rule.order_types).values_list("pk", flat=True))
        # One INSERT ... SELECT ... ON CONFLICT DO NOTHING: no model instance per order.
        insert_per_id(_new_reminder(rule=rule, order_id=0, due_at=now), per="order", ids=ids, ignore_conflicts=True)
        offered += len(ids)
    return offered


def reminders_notify_orders(
    *,
    order_ids: list[int],
    purpose: str,
    variables: dict[str, str] | None = None,
    subject: str = "",
    now: datetime | None = None,
) -> int:
    """Queue a notice (发货通知, 签收通知, 商家取消通知, the after-sales messages) for these orders.

    Called inside the transaction that ships, delivers or cancels, so the outbox rows commit
    (or roll back) with it; send_due_reminders delivers them, re-checking the order, opt-out
    and quiet hours first. At most once per (order, rule): a second call (a later parcel of
    the same order, a retried request) adds nothing. `variables` are kept on the rows for
    the template (the parcel's carrier and tracking number). `subject` tells apart notices of
    one rule for one order that are each due once, e.g. two after-sales requests (their
    numbers). One query for the rules, one
    INSERT … ON CONFLICT DO NOTHING per active rule (plus one SELECT for a rule limited to
    some order types). Returns the rows offered.
    """
    if purpose not in NOTICE_KINDS:
        raise ValueError(f"not a notice purpose: {purpose}")
    if not order_ids:
        return 0
    now = now or timezone.now()
    offered = 0
    for rule in ReminderRule.objects.filter(active=True, purpose=purpose, kind=NOTICE_KINDS[purpose]).order_by("pk"):
        ids = sorted(set(order_ids))
        if rule.order_types:
            ids = list(Order.objects.filter(pk__in=ids, order_type__in=rule.order_types).values_list("pk", flat=True))
        due_at = now + timedelta(minutes=rule.offset_minutes)
        Reminder.objects.bulk_create(
            [
                _new_reminder(rule=rule, order_id=order_id, due_at=due_at, variables=variables, subject=subject)
                for order_id in ids
            ],
            ignore_conflicts=True,  # an existing row (and its variables) is left as it was
            batch_size=1000,
        )
        offered += len(ids)
    return offered


def _new_reminder(
    *, rule: ReminderRule, order_id: int, due_at: datetime, variables: dict[str, str] | None = None, subject: str = ""
) -> Reminder:
    return Reminder(
        order_id=order_id,
        rule=rule,
        purpose=rule.purpose,
        channel=rule.channel,
        scheduled_at=due_at,
        next_attempt_at=due_at,
        variables=variables or {},
        subject=subject[:40],
    )


# --- sending ----------------------------------------------------------------------------


def reminders_send_due(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> SendReport:
    """Schedule, then claim and deliver due reminders in batches. Safe to overlap with itself."""
    now = now or timezone.now()
    batch_size = batch_size or conf.send_batch_size()
    report = SendReport(scheduled=reminders_schedule(now=now))
    report.abandoned = _abandon_stale_claims(now=now)
    for _batch in range(max_batches or conf.send_max_batches()):
        claimed, taken = _claim_batch(now=now, batch_size=batch_size, report=report)
        if not taken:
            break
        report.batches += 1
        for delivery in claimed:
            _deliver(delivery, report=report)
        if taken < batch_size:
            break
    return report


@dataclass(frozen=True)
class _Delivery:
    reminder: Reminder
    order: Order
    rule: ReminderRule
    message: OutboundMessage


@dataclass
class _Limits:
    """Counts for the caps, loaded for a whole batch in a fixed number of queries, then kept up to date."""

    per_order: Counter
    last_at: dict[int, datetime]
    per_mobile_today: Counter
    opted_out: set[str]

    @classmethod
    def load(cls, *, order_ids: list[int], mobiles: list[str], now: datetime) -> _Limits:
        since = selectors.day_start(now)
        active = {"purpose": Purpose.PAYMENT_REMINDER, "status__in": selectors.ACTIVE_OR_SENT}
        per_order: Counter = Counter()
        last_at: dict[int, datetime] = {}
        automatic = (
            Reminder.objects.filter(order_id__in=order_ids, **active)
            .order_by()
            .values_list("order_id")
            .annotate(n=Count("pk"), last=Max("claimed_at"))
        )
        manual = (
            ManualReminder.objects.filter(order_id__in=order_ids)
            .order_by()
            .values_list("order_id")
            .annotate(n=Count("pk"), last=Max("created_at"))
        )
        for order_id, n, last in [*automatic, *manual]:
            per_order[order_id] += n
            if last is not None and (order_id not in last_at or last > last_at[order_id]):
                last_at[order_id] = last
        per_mobile: Counter = Counter()
        for mobile, n in (
            Reminder.objects.filter(order__customer_mobile__in=mobiles, claimed_at__gte=since, **active)
            .order_by()
            .values_list("order__customer_mobile")
            .annotate(n=Count("pk"))
        ):
            per_mobile[mobile] += n
        for mobile, n in (
            ManualReminder.objects.filter(order__customer_mobile__in=mobiles, created_at__gte=since)
            .order_by()
            .values_list("order__customer_mobile")
            .annotate(n=Count("pk"))
        ):
            per_mobile[mobile] += n
        opted_out = set(
            CustomerContactPreference.objects.filter(mobile__in=mobiles, opted_out=True).values_list(
                "mobile", flat=True
            )
        )
        return cls(per_order=per_order, last_at=last_at, per_mobile_today=per_mobile, opted_out=opted_out)

    def count(self, *, order: Order, at: datetime) -> None:
        self.per_order[order.pk] += 1
        self.last_at[order.pk] = at
        self.per_mobile_today[order.customer_mobile] += 1


def _claim_batch(*, now: datetime, batch_size: int, report: SendReport) -> tuple[list[_Delivery], int]:
    """Decide a batch under lock; returns (the claimed deliveries, how many rows were taken)."""
    deliveries: list[_Delivery] = []
    with transaction.atomic():
        batch = list(
            Reminder.objects.select_for_update(skip_locked=True)
            .filter(status=Reminder.Status.SCHEDULED, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")[:batch_size]
        )
        if not batch:
            return [], 0
        order_ids = sorted({reminder.order_id for reminder in batch})
        mobiles = sorted(set(Order.objects.filter(pk__in=order_ids).values_list("customer_mobile", flat=True)))
        _lock_customers(mobiles)
        orders = {
            order.pk: order
            for order in Order.objects.select_for_update(of=("self",))
            .select_related("storefront")
            .filter(pk__in=order_ids)
            .order_by("pk")
        }
        rules = {rule.pk: rule for rule in ReminderRule.objects.filter(pk__in={r.rule_id for r in batch})}
        goods: dict[int, list[tuple[str, int]]] = {}
        for order_id, name, quantity in (
            OrderLine.objects.filter(order_id__in=order_ids).order_by("id").values_list("order_id", "name", "quantity")
        ):
            goods.setdefault(order_id, []).append((name, quantity))
        limits = _Limits.load(order_ids=order_ids, mobiles=mobiles, now=now)

        claimed_at = timezone.now()
        for reminder in batch:
            order, rule = orders[reminder.order_id], rules[reminder.rule_id]
            delivery = _decide_one(
                reminder=reminder, order=order, rule=rule, goods=goods.get(order.pk, []), limits=limits, now=now
            )
            if delivery is not None:
                reminder.claim(at=claimed_at, recipient=delivery.message.recipient, text=delivery.message.text)
                if reminder.purpose == Purpose.PAYMENT_REMINDER:
                    limits.count(order=order, at=claimed_at)
                deliveries.append(delivery)
            elif reminder.status == Reminder.Status.SKIPPED:
                report.skipped += 1
                report.skip_reasons[reminder.skip_reason] += 1
            elif reminder.status == Reminder.Status.FAILED:
                report.failed += 1
            else:
                report.deferred += 1
            reminder.updated_at = claimed_at
        Reminder.objects.bulk_update(
            batch,
            [
                "status",
                "next_attempt_at",
                "attempts",
                "claimed_at",
                "recipient",
                "text",
                "skip_reason",
                "last_error",
                "updated_at",
            ],
        )
    return deliveries, len(batch)


def _lock_customers(mobiles: list[str]) -> None:
    """Serialise the per-customer daily cap across overlapping runs (PostgreSQL; SQLite has one writer)."""
    if connection.vendor != "postgresql" or not mobiles:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(m)) FROM (SELECT unnest(%s::text[]) AS m ORDER BY 1) AS c",
            [CUSTOMER_LOCK_SPACE, mobiles],
        )


def _recipient(channel: str, order: Order) -> str | None:
    if channel == Channel.SMS:
        return order.customer_mobile or None
    if channel == Channel.EMAIL:
        return order.customer_email or None
    return ""  # in-app: the order itself is the address


def _status_skip_reason(purpose: str, order: Order, now: datetime) -> str | None:
    if purpose == Purpose.PAYMENT_REMINDER:
        if order.status == OrderStatus.CANCELLED:
            return SkipReason.ORDER_CANCELLED
        if order.status != OrderStatus.PENDING_PAYMENT:
            return SkipReason.ORDER_PAID
        if now >= order.payment_deadline:
            return SkipReason.PAST_DEADLINE
    elif purpose == Purpose.CONFIRMATION:
        if order.status == OrderStatus.CANCELLED:
            return SkipReason.ORDER_CANCELLED
    elif purpose == Purpose.CLOSED_NOTICE and order.status != OrderStatus.CANCELLED:
        return SkipReason.ORDER_REOPENED
    elif purpose in (Purpose.SHIPPED_NOTICE, Purpose.DELIVERED_NOTICE) and order.status == OrderStatus.CANCELLED:
        # Whatever the order's status otherwise (partly shipped, shipped, completed): the parcel
        # did leave or arrive. A cancelled order (a refused COD parcel) is told nothing more.
        return SkipReason.ORDER_CANCELLED
    elif purpose == Purpose.CANCELLED_NOTICE and order.status != OrderStatus.CANCELLED:
        return SkipReason.ORDER_REOPENED
    return None


def _decide_one(
    *,
    reminder: Reminder,
    order: Order,
    rule: ReminderRule,
    goods: list[tuple[str, int]],
    limits: _Limits,
    now: datetime,
) -> _Delivery | None:
    """Skip, defer (both applied to `reminder`) or return what to send. Runs with the order locked."""
    reason = None if rule.active else SkipReason.RULE_INACTIVE
    reason = reason or _status_skip_reason(reminder.purpose, order, now)
    recipient = _recipient(reminder.channel, order)
    if reason is None and recipient is None:
        reason = SkipReason.NO_CONTACT
    is_payment_reminder = reminder.purpose == Purpose.PAYMENT_REMINDER
    if reason is None and reminder.purpose in OPT_OUT_PURPOSES and order.customer_mobile in limits.opted_out:
        reason = SkipReason.OPTED_OUT
    if reason is None and is_payment_reminder:
        if limits.per_order[order.pk] >= conf.order_cap():
            reason = SkipReason.ORDER_CAP
        elif limits.per_mobile_today[order.customer_mobile] >= conf.daily_cap():
            reason = SkipReason.DAILY_CAP
    if reason is not None:
        reminder.skip(reason=reason)
        return None

    earliest = now
    if is_payment_reminder and order.pk in limits.last_at:
        earliest = max(earliest, limits.last_at[order.pk] + conf.min_gap())
    allowed = next_allowed_time(earliest) if reminder.channel == Channel.SMS else earliest
    if allowed > now:
        if reminder.purpose in DEADLINE_BOUND and allowed >= order.payment_deadline:
            reminder.skip(reason=SkipReason.QUIET_HOURS if allowed != earliest else SkipReason.TOO_SOON)
        else:
            reminder.defer(until=allowed)
        return None

    variables = message_variables(order=order, goods=goods, now=now, extra=reminder.variables)
    try:
        text = render(rule.template, variables)
        subject = render(rule.email_subject, variables) if rule.email_subject else f"{rule.name} {order.order_no}"
    except RenderError as err:
        reminder.fail(error=_("消息模板错误：%(e)s") % {"e": err})
        return None
    message = OutboundMessage(
        reference=f"R{reminder.pk}",
        recipient=recipient,
        subject=subject,
        text=text,
        params=provider_params(variables),
        sms_template_code=rule.sms_template_code,
    )
    return _Delivery(reminder=reminder, order=order, rule=rule, message=message)


def quiet_hours_end(at: datetime) -> datetime | None:
    """If `at` falls in the quiet hours (local time), when they end; otherwise None."""
    window = conf.quiet_hours()
    if window is None:
        return None
    start, end = window
    local = timezone.localtime(at)
    moment = local.time()
    inside = start <= moment < end if start < end else (moment >= start or moment < end)
    if not inside:
        return None
    end_day = local.date() if moment < end else local.date() + timedelta(days=1)
    return timezone.make_aware(datetime.combine(end_day, end), local.tzinfo)


def next_allowed_time(at: datetime) -> datetime:
    """`at`, or the end of the quiet hours it falls in."""
    return quiet_hours_end(at) or at


def _deliver(delivery: _Delivery, *, report: SendReport) -> None:
    reminder = delivery.reminder
    try:
        provider_message_id = channel_for(reminder.channel).send(delivery.message)
    except ChannelError as err:
        _record_failure(reminder, error=str(err), retryable=err.retryable, report=report)
        return
    except Exception as err:  # a provider bug: record it on the row (visible in the admin), keep the batch going
        logger.exception("reminder %s: channel %s raised", reminder.pk, reminder.channel)
        _record_failure(reminder, error=f"{type(err).__name__}: {err}", retryable=False, report=report)
        return
    with transaction.atomic():
        reminder.mark_sent(at=timezone.now(), provider_message_id=provider_message_id)
        reminder.save(update_fields=["status", "sent_at", "provider_message_id", "last_error", "updated_at"])
        order_event_record(
            order=delivery.order,
            type=OrderEvent.Type.REMINDER_SENT,
            actor=Actor.system(JOB),
            reason=delivery.rule.name,
            reminder_id=reminder.pk,
            purpose=reminder.purpose,
            channel=reminder.channel,
            recipient=reminder.recipient,
        )
    report.sent += 1


def _record_failure(reminder: Reminder, *, error: str, retryable: bool, report: SendReport) -> None:
    if retryable and reminder.attempts < conf.max_attempts():
        reminder.retry_later(at=timezone.now() + conf.retry_delay(reminder.attempts), error=error)
        report.retrying += 1
    else:
        reminder.fail(error=error)
        report.failed += 1
    reminder.save(update_fields=["status", "next_attempt_at", "last_error", "updated_at"])


def _abandon_stale_claims(*, now: datetime) -> int:
    """Rows stuck in `sending` past the lease: the worker died mid-send. Failed, never re-sent blindly."""
    return Reminder.objects.filter(status=Reminder.Status.SENDING, claimed_at__lt=now - conf.sending_lease()).update(
        status=Reminder.Status.FAILED,
        last_error=_("发送结果未知：发送过程中任务中断，请人工确认"),
        updated_at=now,
    )


def reminder_requeue(*, reminder: Reminder) -> Reminder:
    """Customer service tries a failed message again (it goes through every check again)."""
    with transaction.atomic():
        reminder = Reminder.objects.select_for_update().get(pk=reminder.pk)
        if reminder.status != Reminder.Status.FAILED:
            raise InvalidTransition(_("只有发送失败的提醒可以重新发送"), details={"status": reminder.status})
        reminder.requeue(at=timezone.now())
        reminder.save(update_fields=["status", "next_attempt_at", "attempts", "updated_at"])
    return reminder


# --- manual 催付 and opt-out ---------------------------------------------------------------


def manual_reminder_record(
    *,
    order: Order,
    channel: str,
    outcome: str,
    actor: Actor,
    note: str = "",
    promised_pay_at: datetime | None = None,
) -> ManualReminder:
    """人工催付: customer service record a call or chat; it goes on the order's timeline."""
    actor.require("reminders.add_manualreminder")
    errors: dict[str, list[str]] = {}
    if channel not in ManualReminder.Channel.values:
        errors["channel"] = [_("无效的催付方式")]
    if outcome not in ManualReminder.Outcome.values:
        errors["outcome"] = [_("无效的结果分类")]
    if errors:
        raise ValidationFailed(fields=errors)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        record = ManualReminder.objects.create(
            order=order,
            channel=channel,
            outcome=outcome,
            note=note.strip(),
            promised_pay_at=promised_pay_at,
            created_by=actor.user,
        )
        order_event_record(
            order=order,
            type=OrderEvent.Type.MANUAL_REMINDER,
            actor=actor,
            reason=str(ManualReminder.Outcome(outcome).label),
            manual_reminder_id=record.pk,
            channel=channel,
            outcome=outcome,
            note=record.note,
            promised_pay_at=promised_pay_at.isoformat() if promised_pay_at else "",
        )
    return record


def customer_opt_out(*, mobile: str, reason: str = "", user=None) -> CustomerContactPreference:
    """The customer asked for no more messages (e.g. replied 退订): 催付 and the shipping, delivery
    and merchant-cancel notices stop (OPT_OUT_PURPOSES). Confirmations and closed notices still go out."""
    if user is not None:
        require_permission(user, "reminders.change_customercontactpreference")
    preference, _created = CustomerContactPreference.objects.update_or_create(
        mobile=mobile, defaults={"opted_out": True, "reason": reason[:200], "updated_by": user}
    )
    return preference


def customer_opt_in(*, mobile: str, reason: str = "", user=None) -> CustomerContactPreference:
    """The customer wants 催付 messages again (customer service records why)."""
    if user is not None:
        require_permission(user, "reminders.change_customercontactpreference")
    preference, _created = CustomerContactPreference.objects.update_or_create(
        mobile=mobile, defaults={"opted_out": False, "reason": reason[:200], "updated_by": user}
    )
    return preference
