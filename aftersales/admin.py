"""售后 in the admin: the queue (soonest deadline first, with a countdown), one page per request
with what a person needs to decide and the buttons its state and the user's permissions allow
(同意, 拒绝, 收货验收, 代顾客发起), the order page's after-sales block, and the report at
/admin/aftersales/report/.

Every button is one aftersales.services call with Actor.staff(request.user): the service checks
the permission, takes the locks and writes the timeline. A refusal is shown in Chinese and
changes nothing. Nothing here is deleted or edited by hand.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from console.charts import ECHARTS_JS, Chart, horizontal_bar_chart
from console.exports import AftersaleExport, MaskedExportMixin
from oms.admin_base import NoDeleteMixin, ReadOnlyAdmin, ReadOnlyInline
from oms.errors import DomainError
from orders.events import Actor
from orders.models import Order
from orders.pii import mask_mobile
from payments.models import Refund

from .forms import ApproveForm, InspectionForm, OpenForm, OrderLookupForm, ReportRangeForm
from .models import Aftersale, AftersaleStatus, Report, Responsibility
from .selectors import (
    AftersaleReport,
    aftersale_refund_preview,
    aftersale_report,
    aftersale_unit_amounts,
    aftersales_with_due,
)
from .services import aftersale_approve, aftersale_create, aftersale_deadline, aftersale_receive, aftersale_reject

A = AftersaleStatus
STATUS_COLOURS = {
    A.REQUESTED: "#b26b00",
    A.APPROVED: "#1565c0",
    A.AWAITING_RETURN: "#1565c0",
    A.RETURN_SHIPPED: "#6a1b9a",
    A.RECEIVED: "#6a1b9a",
    A.INSPECTED: "#6a1b9a",
    A.REFUNDING: "#00695c",
    A.RESHIPPING: "#00695c",
    A.COMPLETED: "#2e7d32",
    A.REJECTED: "#757575",
    A.CANCELLED: "#757575",
    A.CLOSED: "#757575",
}
RECEIVABLE = {A.AWAITING_RETURN, A.RETURN_SHIPPED}
RED, AMBER = "#c62828", "#b26b00"


def countdown_text(due: datetime, now: datetime) -> str:
    """ "剩 5 小时" / "已超时 2 小时" / "剩 2 天 3 小时" / "剩 40 分钟"."""
    seconds = (due - now).total_seconds()
    minutes = int(abs(seconds) // 60)
    if minutes >= 48 * 60:
        amount = _("%(d)d 天 %(h)d 小时") % {"d": minutes // 1440, "h": minutes % 1440 // 60}
    elif minutes >= 60:
        amount = _("%(h)d 小时") % {"h": minutes // 60}
    else:
        amount = _("%(m)d 分钟") % {"m": minutes}
    return (_("已超时 %(t)s") if seconds < 0 else _("剩 %(t)s")) % {"t": amount}


def countdown_html(aftersale: Aftersale, due: datetime | None, now: datetime | None = None):
    now = now or timezone.now()
    if due is None:
        return format_html('<span style="color:{}">{}</span>', RED, _("已升级主管")) if aftersale.escalated else "—"
    late = due < now
    colour = RED if late or aftersale.escalated else AMBER if (due - now).total_seconds() < 4 * 3600 else "inherit"
    return format_html(
        '<span class="as-countdown" style="color:{};white-space:nowrap;{}" title="{}">{}{}</span>',
        colour,
        "font-weight:bold" if colour == RED else "",
        timezone.localtime(due).strftime("%Y-%m-%d %H:%M"),
        countdown_text(due, now),
        _("（已升级主管）") if aftersale.escalated else "",
    )


def status_badge_html(aftersale: Aftersale):
    return format_html(
        '<b style="color:{}">{}</b>', STATUS_COLOURS.get(aftersale.status, "#000"), aftersale.get_status_display()
    )


def refusal_text(err: DomainError) -> str:
    """The service's Chinese message, with the fields it named."""
    details = _("；").join(str(message) for messages_ in (err.fields or {}).values() for message in messages_)
    if not details:
        return err.message
    return _("%(message)s：%(details)s") % {"message": err.message, "details": details}


class OrderAftersaleInline(ReadOnlyInline):
    """The order page's 售后 block (orders/admin.py): number, type, status, money, a link."""

    model = Aftersale
    verbose_name_plural = gettext_lazy("售后")
    fields = ["aftersale_link", "type", "reason", "status_label", "refund_amount", "refunded_amount", "created_at"]
    readonly_fields = fields
    ordering = ["-created_at"]
    template = "aftersales/admin/order_aftersales_inline.html"

    @admin.display(description=gettext_lazy("售后单号"))
    def aftersale_link(self, aftersale: Aftersale):
        url = reverse("admin:aftersales_aftersale_change", args=[aftersale.pk])
        return format_html('<a href="{}">{}</a>', url, aftersale.aftersale_no)

    @admin.display(description=gettext_lazy("状态"))
    def status_label(self, aftersale: Aftersale):
        return status_badge_html(aftersale)


@admin.register(Aftersale)
class AftersaleAdmin(MaskedExportMixin, NoDeleteMixin, admin.ModelAdmin):
    resource_classes = [AftersaleExport]
    # Named, so the export button (django-import-export) extends it rather than replacing it.
    change_list_template = "admin/aftersales/aftersale/change_list.html"
    export_select_related = ("order",)
    list_display = ["aftersale_no", "order_link", "type", "reason", "status_badge", "refund_amount", "countdown"]
    list_display_links = ["aftersale_no"]
    list_filter = ["type", "status", "reason", "responsibility", "escalated"]
    search_fields = ["aftersale_no", "order__order_no"]
    list_select_related = ["order", "return_shipment"]
    change_form_template = "aftersales/admin/change_form.html"
    fieldsets = [
        (
            gettext_lazy("原始数据"),
            {
                "classes": ["collapse"],
                "fields": [f.name for f in Aftersale._meta.fields if f.name != "id"],
            },
        )
    ]

    # --- the queue --------------------------------------------------------------------------

    def get_queryset(self, request):
        return aftersales_with_due(super().get_queryset(request))

    def get_ordering(self, request):
        return [F("due").asc(nulls_last=True), "id"]

    @admin.display(description=gettext_lazy("订单号"), ordering="order__order_no")
    def order_link(self, aftersale: Aftersale):
        url = reverse("admin:orders_order_change", args=[aftersale.order_id])
        return format_html('<a href="{}">{}</a>', url, aftersale.order.order_no)

    @admin.display(description=gettext_lazy("状态"), ordering="status")
    def status_badge(self, aftersale: Aftersale):
        return status_badge_html(aftersale)

    @admin.display(description=gettext_lazy("截止"), ordering=F("due").asc(nulls_last=True))
    def countdown(self, aftersale: Aftersale):
        return countdown_html(aftersale, aftersale_deadline(aftersale))

    # --- permissions: rows change only through the services ----------------------------------

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return request.user.has_perm("aftersales.open_aftersale")

    # --- one request ---------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        aftersale = self.get_object(request, object_id)
        if aftersale is not None:
            extra_context = {**self._decision_context(request, aftersale), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def _decision_context(self, request, aftersale: Aftersale) -> dict:
        order = aftersale.order
        lines = list(aftersale.lines.select_related("order_line"))
        amounts = aftersale_unit_amounts(aftersale)
        rows = []
        for ln in lines:
            ol = ln.order_line
            net = ol.line_total - ol.discount
            rows.append(
                {
                    "line": ln,
                    "order_line": ol,
                    "unit_net": (net / ol.quantity).quantize(Decimal("0.01")),
                    "preview": amounts[ln.pk][ln.quantity] if ln.quantity_accepted is None else ln.refund_amount,
                    "photos": ln.photos,
                }
            )
        parcel = aftersale.return_shipment
        user = request.user
        limit = settings.OMS_AFTERSALE_APPROVAL_LIMIT
        return {
            "aftersale": aftersale,
            "order": order,
            "customer_mobile": mask_mobile(order.customer_mobile),
            "rows": rows,
            "countdown": countdown_html(aftersale, aftersale_deadline(aftersale)),
            "status_badge": status_badge_html(aftersale),
            "images": aftersale.images,
            "return_parcel": parcel,
            "tracking": list(parcel.tracking_events.order_by("-time")[:5]) if parcel else [],
            "refund": Refund.objects.filter(out_refund_no=aftersale.out_refund_no).first()
            if aftersale.out_refund_no
            else None,
            "order_url": reverse("admin:orders_order_change", args=[order.pk]),
            "timeline_url": reverse("admin:orders_orderevent_changelist") + f"?order__id__exact={order.pk}",
            "refund_url": reverse("admin:payments_refund_changelist") + f"?q={aftersale.out_refund_no}",
            "can_approve": aftersale.status == A.REQUESTED and user.has_perm("aftersales.approve_aftersale"),
            "offer_refund_shipping": aftersale.responsibility != Responsibility.BUYER,
            "needs_supervisor": limit is not None and aftersale.refund_amount > limit,
            "can_receive": aftersale.status in RECEIVABLE and user.has_perm("aftersales.inspect_aftersale"),
            "can_open": user.has_perm("aftersales.open_aftersale"),
        }

    def get_urls(self):
        def view(name, func):
            return path(f"<int:pk>/{name}/", self.admin_site.admin_view(func), name=f"aftersales_aftersale_{name}")

        return [
            view("approve", self.approve_view),
            view("reject", self.reject_view),
            view("receive", self.receive_view),
            *super().get_urls(),
        ]

    def _get(self, request, pk: int) -> Aftersale:
        aftersale = self.get_object(request, str(pk))
        if aftersale is None or not self.has_view_permission(request, aftersale):
            raise Http404
        return aftersale

    def _back(self, aftersale: Aftersale) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:aftersales_aftersale_change", args=[aftersale.pk]))

    def _call(self, request, call) -> Aftersale | None:
        try:
            return call(Actor.staff(request.user))
        except DomainError as err:  # includes oms.errors.PermissionDenied
            self.message_user(request, refusal_text(err), level=messages.ERROR)
            return None

    def _done(self, request, aftersale: Aftersale, verb: str) -> None:
        text = _("%(verb)s：%(no)s 现为「%(status)s」") % {
            "verb": verb,
            "no": aftersale.aftersale_no,
            "status": aftersale.get_status_display(),
        }
        if aftersale.status == A.REFUNDING:
            text += _("，退款 %(amount)s 元待财务审批") % {"amount": aftersale.refund_amount}
        self.message_user(request, text, level=messages.SUCCESS)

    def approve_view(self, request, pk: int):
        aftersale = self._get(request, pk)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        form = ApproveForm(request.POST)
        refund_shipping = form.is_valid() and form.cleaned_data["refund_shipping"]
        done = self._call(
            request,
            lambda actor: aftersale_approve(aftersale=aftersale, actor=actor, refund_shipping=refund_shipping),
        )
        if done is not None:
            self._done(request, done, _("已同意"))
        return self._back(aftersale)

    def reject_view(self, request, pk: int):
        aftersale = self._get(request, pk)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        reason = request.POST.get("reason", "")
        done = self._call(request, lambda actor: aftersale_reject(aftersale=aftersale, actor=actor, reason=reason))
        if done is not None:
            self._done(request, done, _("已拒绝"))
        return self._back(aftersale)

    def receive_view(self, request, pk: int):
        """收货验收: one form for the whole request; 预览退款 shows the server's refund, 确认验收 does it."""
        aftersale = self._get(request, pk)
        lines = list(aftersale.lines.select_related("order_line"))
        form = InspectionForm(request.POST or None, aftersale=aftersale, lines=lines)
        preview = None
        if request.method == "POST" and form.is_valid():
            preview = aftersale_refund_preview(
                aftersale=aftersale, accepted=form.accepted(), return_freight=form.return_freight()
            )
            if "_confirm" in request.POST:
                done = self._call(
                    request,
                    lambda actor: aftersale_receive(
                        aftersale=aftersale,
                        actor=actor,
                        inspections=form.inspections(),
                        return_freight=form.return_freight(),
                    ),
                )
                if done is not None:
                    self._done(request, done, _("已验收"))
                    return self._back(done)
        context = {
            **self.admin_site.each_context(request),
            "title": _("收货验收 %(no)s") % {"no": aftersale.aftersale_no},
            "opts": self.model._meta,
            "original": aftersale,
            "aftersale": aftersale,
            "order": aftersale.order,
            "form": form,
            "preview": preview,
            "unit_amounts": {str(k): v for k, v in aftersale_unit_amounts(aftersale).items()},
            "shipping": str(aftersale.order.shipping_fee if aftersale.refund_shipping else "0.00"),
            "freight_cap": str(settings.OMS_RETURN_FREIGHT_CAP),
            "can_receive": aftersale.status in RECEIVABLE and request.user.has_perm("aftersales.inspect_aftersale"),
            "return_parcel": aftersale.return_shipment,
        }
        return TemplateResponse(request, "aftersales/admin/receive.html", context)

    def add_view(self, request, form_url="", extra_context=None):
        """代顾客发起售后 (incl. 补差) for one order: the order number first, then its lines."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        order_no = (request.POST.get("order_no") or request.GET.get("order") or "").strip()
        order = Order.objects.filter(order_no=order_no).first() if order_no else None
        lookup = OrderLookupForm(initial={"order_no": order_no})
        form = OpenForm(request.POST or None, order=order) if order else None
        if order_no and order is None:
            self.message_user(request, _("找不到订单 %(no)s") % {"no": order_no}, level=messages.ERROR)
        if form is not None and request.method == "POST" and form.is_valid():
            created = self._call(
                request, lambda actor: aftersale_create(order=order, actor=actor, **form.service_kwargs())
            )
            if created is not None:
                self.message_user(
                    request,
                    _("已为顾客发起售后 %(no)s（应退 %(amount)s 元），待审核")
                    % {"no": created.aftersale_no, "amount": created.refund_amount},
                    level=messages.SUCCESS,
                )
                return self._back(created)
        context = {
            **self.admin_site.each_context(request),
            "title": _("代顾客发起售后"),
            "opts": self.model._meta,
            "lookup": lookup,
            "order": order,
            "form": form,
        }
        return TemplateResponse(request, "aftersales/admin/open.html", context)


# --- the report ---------------------------------------------------------------------------------


def report_charts(report: AftersaleReport) -> dict[str, Chart]:
    """The report's bar charts. The tables list every reason and party, zeros included; a chart
    shows only what happened."""

    def rates(rows) -> list[tuple[str, float]]:
        return [(str(row.label), float(row.rate)) for row in rows if row.rate]

    rate = _("售后率")
    return {
        "sku": horizontal_bar_chart(
            [(row.key, float(row.rate)) for row in report.by_sku if row.rate],
            title=_("按商品的售后率（%）"),
            series_name=rate,
            unit="%",
        ),
        "reason": horizontal_bar_chart(
            rates(report.by_reason), title=_("按原因的售后率（%）"), series_name=rate, unit="%"
        ),
        "responsibility": horizontal_bar_chart(
            rates(report.by_responsibility), title=_("按责任方的售后率（%）"), series_name=rate, unit="%"
        ),
        "refund": horizontal_bar_chart(
            [
                (str(row["label"]), float(row["refunded"] + row["refunding"]))
                for row in report.by_type
                if row["refunded"] + row["refunding"]
            ],
            title=_("按类型的退款金额（元，含退款中）"),
            series_name=_("退款金额"),
        ),
        "carrier": horizontal_bar_chart(
            [(str(row.label), row.damaged) for row in report.damage_by_carrier if row.damaged],
            title=_("按快递的物流破损申请"),
            series_name=_("破损申请"),
        ),
    }


@admin.register(Report)
class AftersaleReportAdmin(ReadOnlyAdmin):
    """A page, not a table: the changelist of this proxy model is the report."""

    def has_view_permission(self, request, obj=None) -> bool:
        user = request.user
        return user.is_active and user.is_staff and user.has_perm("aftersales.view_aftersale")

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ReportRangeForm(request.GET or None)
        start, end = form.date_range()
        report = aftersale_report(start=start, end=end)
        context = {
            **self.admin_site.each_context(request),
            "title": _("售后报表"),
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "charts": report_charts(report),
            "echarts_js": ECHARTS_JS,
            "queue_url": reverse("admin:aftersales_aftersale_changelist"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "aftersales/admin/report.html", context)
