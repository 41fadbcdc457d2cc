"""Admin for 催付: rules, the message log (with failed sends for customer service), manual
催付 records, opt-outs, and the operations report at /admin/reminders/report/.

`reminder_links_for(order)` is the small HTML block the order page shows (orders/admin.py).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from console.charts import ECHARTS_JS, PALETTE, TITLE_STYLE, Chart, horizontal_bar_chart
from oms.admin_base import NoDeleteMixin, ReadOnlyAdmin
from oms.errors import DomainError
from orders.models import Order, OrderStatus, OrderType
from orders.pii import mask_mobile
from orders.services import Actor

from . import services
from .forms import ManualReminderForm, ReminderRuleForm, ReportRangeForm
from .models import CustomerContactPreference, ManualReminder, Reminder, ReminderRule, Report
from .selectors import ReminderReport, order_reminders_today, reminder_report


def reminder_links_for(order: Order) -> SafeString:
    """For the order page: what was sent, what failed, manual 催付, and a link to record one. Two queries."""
    counts = dict(order.reminders.order_by().values_list("status").annotate(n=Count("pk")))
    manual = order.manual_reminders.count()
    log_url = reverse("admin:reminders_reminder_changelist") + f"?order__id__exact={order.pk}"
    manual_url = reverse("admin:reminders_manualreminder_changelist") + f"?order__id__exact={order.pk}"
    add_url = reverse("admin:reminders_manualreminder_add") + f"?order={order.pk}"
    failed = counts.get(Reminder.Status.FAILED, 0)
    return format_html(
        '<a href="{}">{}</a> · <a href="{}">{}</a> · <a class="addlink" href="{}">{}</a>',
        log_url,
        format_html(
            _("自动消息：已发送 {}，待发送 {}，已跳过 {}，{}"),
            counts.get(Reminder.Status.SENT, 0),
            counts.get(Reminder.Status.SCHEDULED, 0) + counts.get(Reminder.Status.SENDING, 0),
            counts.get(Reminder.Status.SKIPPED, 0),
            format_html('<b style="color:#c62828">{}</b>', _("发送失败 %(n)d") % {"n": failed})
            if failed
            else _("无失败"),
        ),
        manual_url,
        _("人工催付 %(n)d 次") % {"n": manual},
        add_url,
        _("记录人工催付"),
    )


@admin.register(ReminderRule)
class ReminderRuleAdmin(NoDeleteMixin, admin.ModelAdmin):
    form = ReminderRuleForm
    list_display = ["name", "purpose", "kind", "offset_minutes", "channel", "order_type_list", "active"]
    list_editable = ["active"]
    list_filter = ["purpose", "kind", "channel", "active"]
    search_fields = ["name", "code"]

    @admin.display(description=_("适用订单类型"))
    def order_type_list(self, rule: ReminderRule) -> str:
        return _("、").join(str(OrderType(value).label) for value in rule.order_types) or str(_("全部"))


@admin.register(Reminder)
class ReminderAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "order",
        "rule",
        "channel",
        "status_badge",
        "scheduled_at",
        "next_attempt_at",
        "attempts",
        "sent_at",
        "skip_reason",
        "last_error",
    ]
    list_filter = ["status", "purpose", "channel", "skip_reason", "rule"]
    search_fields = ["order__order_no", "order__customer_mobile", "provider_message_id"]
    list_select_related = ["order", "rule"]
    date_hierarchy = "scheduled_at"
    actions = ["requeue_failed"]
    readonly_fields = [
        "order",
        "rule",
        "purpose",
        "channel",
        "status",
        "scheduled_at",
        "next_attempt_at",
        "attempts",
        "claimed_at",
        "sent_at",
        "recipient_masked",
        "text",
        "provider_message_id",
        "skip_reason",
        "last_error",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields

    @admin.display(description=_("接收人"))
    def recipient_masked(self, reminder: Reminder) -> str:
        return mask_mobile(reminder.recipient) if reminder.recipient.isdigit() else reminder.recipient

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description=_("状态"), ordering="status")
    def status_badge(self, reminder: Reminder):
        colours = {"sent": "#2e7d32", "failed": "#c62828", "skipped": "#757575", "sending": "#1565c0"}
        return format_html(
            '<b style="color:{}">{}</b>', colours.get(reminder.status, "#b26b00"), reminder.get_status_display()
        )

    @admin.action(description=_("重新发送所选的失败提醒"), permissions=["change"])
    def requeue_failed(self, request, queryset):
        done = 0
        for reminder in queryset.filter(status=Reminder.Status.FAILED):
            try:
                services.reminder_requeue(reminder=reminder)
                done += 1
            except DomainError as err:
                self.message_user(request, f"#{reminder.pk}: {err.message}", level=messages.ERROR)
        self.message_user(request, _("已重新排队 %(n)d 条提醒") % {"n": done}, level=messages.SUCCESS)


class PromiseFilter(admin.SimpleListFilter):
    """承诺付款已过期: the customer promised a time, it passed, and the order is still unpaid."""

    title = _("承诺付款")
    parameter_name = "promise"

    def lookups(self, request, model_admin):
        return [("overdue", _("已过期未付款"))]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.filter(promised_pay_at__lt=timezone.now(), order__status=OrderStatus.PENDING_PAYMENT)
        return queryset


@admin.register(ManualReminder)
class ManualReminderAdmin(NoDeleteMixin, admin.ModelAdmin):
    form = ManualReminderForm
    list_display = ["created_at", "order", "channel", "outcome", "promised_pay_at", "created_by", "note"]
    list_filter = [PromiseFilter, "outcome", "channel", "created_at"]
    search_fields = ["order__order_no", "order__customer_mobile", "note"]
    list_select_related = ["order", "created_by"]
    autocomplete_fields = ["order"]
    date_hierarchy = "created_at"

    def has_change_permission(self, request, obj=None) -> bool:
        # Records are append-only (they are on the order's timeline); existing ones are view-only.
        return obj is None and super().has_change_permission(request, obj)

    def add_view(self, request, form_url="", extra_context=None):
        order_id = request.GET.get("order", "")
        if request.method == "GET" and order_id.isdigit():
            self._warn_reminded_today(request, order_id=int(order_id), saved=False)
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj: ManualReminder, form, change: bool) -> None:
        earlier = order_reminders_today(order_id=obj.order_id)
        record = services.manual_reminder_record(
            order=obj.order,
            channel=obj.channel,
            outcome=obj.outcome,
            note=obj.note,
            promised_pay_at=obj.promised_pay_at,
            actor=Actor.staff(request.user),
        )
        obj.pk, obj.created_at, obj.created_by = record.pk, record.created_at, record.created_by
        obj._state.adding = False
        if earlier:
            self._warn(request, earlier, saved=True)

    def response_post_save_add(self, request, obj: ManualReminder):
        if request.user.has_perm("orders.view_order"):
            return HttpResponseRedirect(reverse("admin:orders_order_change", args=[obj.order_id]))
        return super().response_post_save_add(request, obj)

    def _warn_reminded_today(self, request, *, order_id: int, saved: bool) -> None:
        earlier = order_reminders_today(order_id=order_id)
        if earlier:
            self._warn(request, earlier, saved=saved)

    def _warn(self, request, earlier, *, saved: bool) -> None:
        items = format_html_join(
            _("；"),
            _("{} {}（{}·{}）"),
            (
                (
                    f"{timezone.localtime(item.at):%H:%M}",
                    item.channel,
                    _("人工") if item.manual else _("自动"),
                    item.detail,
                )
                for item in earlier
            ),
        )
        lead = _("已保存。请注意") if saved else _("避免重复催付")
        self.message_user(
            request,
            format_html(_("{}：该订单今天已催付 {} 次 —— {}"), lead, len(earlier), items),
            level=messages.WARNING,
        )


@admin.register(CustomerContactPreference)
class CustomerContactPreferenceAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["mobile_masked", "opted_out", "reason", "updated_by", "updated_at"]
    list_filter = ["opted_out"]
    search_fields = ["mobile"]
    fields = ["mobile", "opted_out", "reason"]

    def save_model(self, request, obj: CustomerContactPreference, form, change: bool) -> None:
        change_preference = services.customer_opt_out if obj.opted_out else services.customer_opt_in
        obj.pk = change_preference(mobile=obj.mobile, reason=obj.reason, user=request.user).pk

    def get_readonly_fields(self, request, obj=None):
        return ["mobile"] if obj is not None else []

    @admin.display(description=_("手机号"), ordering="mobile")
    def mobile_masked(self, preference: CustomerContactPreference) -> str:
        return mask_mobile(preference.mobile)


# --- the report -----------------------------------------------------------------------------


def _hour_chart(report: ReminderReport) -> Chart:
    """Reminders sent in each hour of the day, and among them the last reminder before a payment,
    drawn over each other so the share that worked shows at a glance."""
    sent, paid = gettext("发送的催付"), gettext("付款前的最后一条催付")
    options = {
        "title": {"text": gettext("按小时的催付与付款分布"), **TITLE_STYLE},
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "legend": {"bottom": 0, "data": [sent, paid]},
        "grid": {"left": 40, "right": 20, "top": 40, "bottom": 60},
        "xAxis": {"type": "category", "name": gettext("时"), "data": [row.hour for row in report.hours]},
        "yAxis": {"type": "value", "name": gettext("条"), "minInterval": 1},
        "series": [
            {
                "name": sent,
                "type": "bar",
                "data": [row.sent for row in report.hours],
                "itemStyle": {"color": "#bbdefb"},
            },
            {
                "name": paid,
                "type": "bar",
                "barGap": "-100%",
                "data": [row.paid_after for row in report.hours],
                "itemStyle": {"color": "#1565c0"},
            },
        ],
    }
    return Chart(options=options, height=300)


def _outcome_charts(report: ReminderReport) -> tuple[Chart, Chart]:
    """The outcomes of manual reminders: in total, and stacked by day, one colour per outcome."""
    outcomes = list(ManualReminder.Outcome)
    labels = [str(outcome.label) for outcome in outcomes]
    totals = horizontal_bar_chart(
        [(label, report.outcome_totals.get(outcome.value, 0)) for label, outcome in zip(labels, outcomes, strict=True)],
        title=gettext("人工催付结果（合计）"),
        series_name=gettext("次数"),
    )
    days = list(report.outcomes_by_day)
    by_day = {
        "color": PALETTE,
        "title": {"text": gettext("人工催付结果（按天）"), **TITLE_STYLE},
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "legend": {"bottom": 0, "data": labels},
        "grid": {"left": 40, "right": 20, "top": 40, "bottom": 70},
        "xAxis": {"type": "category", "data": [f"{day:%m-%d}" for day in days]},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [
            {
                "name": label,
                "type": "bar",
                "stack": "outcomes",
                "data": [report.outcomes_by_day[day].get(outcome.value, 0) for day in days],
            }
            for label, outcome in zip(labels, outcomes, strict=True)
        ],
    }
    return totals, Chart(options=by_day, height=340)


def _outcome_rows(report: ReminderReport) -> list[dict]:
    """The table under the by-day chart: a day, its count per outcome, its total."""
    outcomes = list(ManualReminder.Outcome)
    return [
        {"day": day, "cells": [counts.get(outcome.value, 0) for outcome in outcomes], "total": sum(counts.values())}
        for day, counts in report.outcomes_by_day.items()
    ]


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    """A page, not a table: the changelist of this proxy model is the report."""

    def has_view_permission(self, request, obj=None) -> bool:
        user = request.user
        return (
            user.is_active
            and user.is_staff
            and (user.has_perm("reminders.view_report") or user.has_perm("reminders.view_reminder"))
        )

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ReportRangeForm(request.GET or None)
        start, end = form.date_range()
        report = reminder_report(start=start, end=end)
        outcome_totals, outcome_by_day = _outcome_charts(report)
        context = {
            **self.admin_site.each_context(request),
            "title": _("催付报表"),
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "echarts_js": ECHARTS_JS,
            "charts": {"hours": _hour_chart(report), "outcomes": outcome_totals, "outcomes_by_day": outcome_by_day},
            "outcome_labels": [outcome.label for outcome in ManualReminder.Outcome],
            "outcome_totals": [
                (outcome.label, report.outcome_totals.get(outcome.value, 0)) for outcome in ManualReminder.Outcome
            ],
            "outcome_days": _outcome_rows(report),
            "status_rows": [(label, report.status_counts.get(value, 0)) for value, label in Reminder.Status.choices],
            "skip_rows": [
                (Reminder.SkipReason(value).label if value else "—", n)
                for value, n in sorted(report.skip_reasons.items(), key=lambda item: -item[1])
            ],
            **(extra_context or {}),
        }
        return TemplateResponse(request, "reminders/admin/report.html", context)
