"""The warehouse's screens: the parcel list a picker works from, the pick list (拣货单) of a
wave, the 验货 scan page, pack / ship / correct-tracking forms, and customer service's
exception queue.

Every button is one service call with the staff user as the actor (fulfillment.services
checks the permission, takes the locks and writes the timeline); the admin only renders,
asks and reports. No row here is edited as a form or deleted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.admin import APIKeyModelAdmin

from oms.admin_base import NoDeleteMixin, ReadOnlyAdmin, ReadOnlyInline, run_for_each
from oms.errors import DomainError
from orders.events import Actor
from orders.models import Order

from . import services
from .admin_imports import ShipmentImportAdminMixin
from .models import (
    OPEN_STATUSES,
    Carrier,
    LogisticsException,
    PickWave,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
    TrackingEvent,
    TrackingPush,
    TrackingSubscription,
    WarehouseAPIKey,
)
from .selectors import shipments_for_order

SS = ShipmentStatus
LINE_BREAK = mark_safe("<br>")  # format_html_join escapes its separator
STATUS_COLOURS = {
    SS.PENDING: "#b26b00",
    SS.PICKING: "#1565c0",
    SS.PACKED: "#6a1b9a",
    SS.SHIPPED: "#00695c",
    SS.DELIVERED: "#2e7d32",
    SS.EXCEPTION: "#c62828",
    SS.REFUSED: "#c62828",
    SS.RETURNED: "#757575",
    SS.CANCELLED: "#9e9e9e",
}


def error_text(err: DomainError) -> str:
    """The sentence a person reads: the error's own message, or, where the service only named
    fields (the generic "请检查字段"), what each field said."""
    details = [str(m) for field_messages in (err.fields or {}).values() for m in field_messages]
    if details and err.message == str(type(err).default_message):
        return gettext("；").join(details)
    return err.message


def carrier_choices() -> list[tuple[str, str]]:
    """Carriers staff may pick; the sandbox carrier only where it is switched on."""
    return [
        (value, label)
        for value, label in Carrier.choices
        if value != Carrier.SANDBOX or settings.OMS_CARRIER_SANDBOX_ENABLED
    ]


def status_badge_html(shipment: Shipment):
    return format_html(
        '<b style="color:{};white-space:nowrap">{}</b>',
        STATUS_COLOURS.get(shipment.status, "#000"),
        shipment.get_status_display(),
    )


def shipments_table_for(order: Order):
    """The order page's 包裹 section: each parcel, its lines and its latest tracking, linked."""
    shipments = list(shipments_for_order(order))
    if not shipments:
        return gettext("尚无包裹（订单待发货后自动分仓生成）")
    rows = []
    for shipment in shipments:
        latest = shipment.tracking[-1] if shipment.tracking else None
        rows.append(
            (
                reverse("admin:fulfillment_shipment_change", args=[shipment.pk]),
                shipment.shipment_no,
                f"{shipment.warehouse.code} {shipment.warehouse.name}",
                status_badge_html(shipment),
                shipment.get_carrier_display() or "—",
                shipment.tracking_no or "—",
                gettext("、").join(f"{line.item_code}×{line.quantity}" for line in shipment.order_lines),
                f"{timezone.localtime(latest.time):%m-%d %H:%M} {latest.context}" if latest else "—",
            )
        )
    body = format_html_join(
        "",
        '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
        rows,
    )
    headings = (_("包裹号"), _("发货仓"), _("状态"), _("承运商"), _("运单号"), _("商品"), _("最新物流"))
    head = format_html_join("", "<th>{}</th>", ((capfirst(heading),) for heading in headings))
    return format_html('<table class="order-shipments"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)


# --- the parcel list ---------------------------------------------------------------------


class OpenExceptionFilter(admin.SimpleListFilter):
    title = _("物流异常")
    parameter_name = "open_exception"

    def lookups(self, request, model_admin):
        return [("yes", _("有未处理异常")), ("no", _("无"))]

    def queryset(self, request, queryset):
        open_case = LogisticsException.objects.filter(shipment=OuterRef("pk"), resolved_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(Exists(open_case))
        if self.value() == "no":
            return queryset.filter(~Exists(open_case))
        return queryset


class OverdueFilter(admin.SimpleListFilter):
    title = _("发货超时")
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", _("已过最晚发货时间仍未发出"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(ship_by__lt=timezone.now(), status__in=OPEN_STATUSES)
        return queryset


class ShipmentLineInline(ReadOnlyInline):
    model = ShipmentLine
    verbose_name_plural = _("包裹明细")
    fields = ["order_link", "sku_code", "sku_name", "bin_location", "quantity", "packed_quantity"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("order", "order_line__sku", "sku")

    @admin.display(description=_("订单"))
    def order_link(self, line: ShipmentLine):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:orders_order_change", args=[line.order_id]), line.order.order_no
        )

    @admin.display(description=_("SKU"))
    def sku_code(self, line: ShipmentLine) -> str:
        return line.item_code

    @admin.display(description=_("商品"))
    def sku_name(self, line: ShipmentLine) -> str:
        return f"{line.item.name} {line.item.spec}".strip()

    @admin.display(description=_("库位"))
    def bin_location(self, line: ShipmentLine) -> str:
        return line.item.bin_location or "—"


class TrackingEventInline(ReadOnlyInline):
    model = TrackingEvent
    verbose_name_plural = _("物流轨迹")
    fields = ["time", "state", "context", "area"]
    readonly_fields = fields
    ordering = ["-time", "-id"]


class LogisticsExceptionInline(ReadOnlyInline):
    model = LogisticsException
    verbose_name_plural = _("物流异常")
    fields = ["kind", "opened_at", "last_event", "owner", "outcome", "note", "resolved_at"]
    readonly_fields = fields


class ShipForm(forms.Form):
    """发货: a carrier from the list, its tracking number, and (to ship part of the parcel) how
    many units of each SKU go now; the rest stays behind in a new pending parcel."""

    carrier = forms.ChoiceField(label=_("承运商"))
    tracking_no = forms.CharField(label=_("运单号"), max_length=64)

    def __init__(self, *args, skus: list[tuple[str, str, int]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["carrier"].choices = [("", _("请选择承运商")), *carrier_choices()]
        self.skus = skus
        for index, (code, name, units) in enumerate(skus):
            self.fields[f"qty_{index}"] = forms.IntegerField(
                label=f"{code} {name}", min_value=0, max_value=units, initial=units, help_text=_("共 %d 件") % units
            )

    def quantity_fields(self):
        return [self[f"qty_{index}"] for index in range(len(self.skus))]

    def ship_lines(self) -> list[dict] | None:
        """None ships everything; otherwise [{"sku", "quantity"}] for the units going now."""
        wanted = [(code, self.cleaned_data[f"qty_{i}"]) for i, (code, _name, _units) in enumerate(self.skus)]
        if all(qty == units for (_code, qty), (_c, _n, units) in zip(wanted, self.skus, strict=True)):
            return None
        return [{"sku": code, "quantity": qty} for code, qty in wanted if qty]

    def clean(self):
        cleaned = super().clean()
        if self.skus and all(cleaned.get(f"qty_{i}") == 0 for i in range(len(self.skus))):
            raise forms.ValidationError(_("至少发出一件商品"))
        return cleaned


class CorrectTrackingForm(forms.Form):
    carrier = forms.ChoiceField(label=_("承运商"))
    tracking_no = forms.CharField(label=_("正确的运单号"), max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["carrier"].choices = carrier_choices()


def form_add_domain_error(form: forms.Form, err: DomainError) -> None:
    """Put a service's field errors beside the fields they name, the rest at the top."""
    placed = False
    for name, field_messages in (err.fields or {}).items():
        if name in form.fields:
            form.add_error(name, list(field_messages))
            placed = True
    if not placed:
        form.add_error(None, error_text(err))


@admin.register(Shipment)
class ShipmentAdmin(ShipmentImportAdminMixin, NoDeleteMixin, admin.ModelAdmin):
    """包裹: what a picker needs to decide which parcels go next (who, what, how many, how late),
    and the buttons for the next step of each."""

    list_display = [
        "shipment_no",
        "status_badge",
        "contents",
        "ship_by_display",
        "order_nos",
        "warehouse",
        "tracking_display",
    ]
    list_filter = ["warehouse", "status", "carrier", OpenExceptionFilter, OverdueFilter]
    search_fields = ["shipment_no", "tracking_no", "lines__order__order_no"]
    search_help_text = _("输入完整的包裹号、运单号或订单号")
    list_select_related = ["warehouse"]
    list_per_page = 100
    ordering = ["ship_by", "id"]
    actions = ["start_pick_wave", "pack_selected", "merge_selected"]
    inlines = [ShipmentLineInline, TrackingEventInline, LogisticsExceptionInline]
    change_form_template = "admin/fulfillment/shipment/change_form.html"
    fieldsets = [
        (
            _("包裹"),
            {
                "fields": [
                    "shipment_no",
                    "status",
                    "warehouse",
                    "wave",
                    "is_cod",
                    "ship_by",
                    "split_from",
                    "merged_into",
                ]
            },
        ),
        (
            _("物流"),
            {
                "fields": [
                    "carrier",
                    "tracking_no",
                    "tracking_state",
                    "shipped_at",
                    "picked_up_at",
                    "last_tracking_at",
                    "delivered_at",
                ]
            },
        ),
        (
            _("时间"),
            {
                "fields": ["created_at", "picking_at", "packed_at", "returned_at", "cancelled_at"],
                "classes": ["collapse"],
            },
        ),
        (_("分仓决策"), {"fields": ["allocation"], "classes": ["collapse"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Shipment._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a parcel changes only through the buttons below (services)

    def get_queryset(self, request):
        lines = ShipmentLine.objects.select_related("order", "order_line__sku", "sku").order_by("id")
        open_case = LogisticsException.objects.filter(shipment=OuterRef("pk"), resolved_at__isnull=True)
        return (
            super()
            .get_queryset(request)
            .annotate(has_open_exception=Exists(open_case))
            .prefetch_related(Prefetch("lines", queryset=lines))
        )

    def get_search_results(self, request, queryset, search_term):
        """Whole numbers only (what a scanner or a paste gives): each lookup is an index scan."""
        term = search_term.strip()
        if not term:
            return queryset, False
        by_order = ShipmentLine.objects.filter(order__order_no=term).values("shipment_id")
        return queryset.filter(Q(shipment_no=term) | Q(tracking_no=term.upper()) | Q(pk__in=by_order)), False

    # --- columns ---

    @admin.display(description=_("订单号"))
    def order_nos(self, shipment: Shipment):
        orders = {line.order_id: line.order.order_no for line in shipment.lines.all()}
        return format_html_join(
            LINE_BREAK,
            '<a href="{}">{}</a>',
            ((reverse("admin:orders_order_change", args=[pk]), no) for pk, no in sorted(orders.items())),
        )

    @admin.display(description=_("状态"), ordering="status")
    def status_badge(self, shipment: Shipment):
        if getattr(shipment, "has_open_exception", False):
            return format_html(
                '{}<br><b style="color:#c62828">⚠ {}</b>', status_badge_html(shipment), gettext("有异常")
            )
        return status_badge_html(shipment)

    @admin.display(description=_("商品×数量"))
    def contents(self, shipment: Shipment):
        units: dict[str, int] = defaultdict(int)
        for line in shipment.lines.all():
            units[line.item_code] += line.quantity
        return format_html_join(
            LINE_BREAK, '<span style="white-space:nowrap">{}×{}</span>', ((code, qty) for code, qty in units.items())
        )

    @admin.display(description=_("最晚发货"), ordering="ship_by")
    def ship_by_display(self, shipment: Shipment):
        if shipment.ship_by is None:
            return "—"
        text = f"{timezone.localtime(shipment.ship_by):%m-%d %H:%M}"
        if shipment.is_open and shipment.ship_by < timezone.now():
            return format_html('<b style="color:#c62828;white-space:nowrap">⚠ {} {}</b>', text, gettext("已超时"))
        return format_html('<span style="white-space:nowrap">{}</span>', text)

    @admin.display(description=_("运单号"), ordering="tracking_no")
    def tracking_display(self, shipment: Shipment) -> str:
        if not shipment.tracking_no:
            return "—"
        return format_html("{}<br>{}", shipment.get_carrier_display(), shipment.tracking_no)

    # --- bulk actions ---

    def has_pick_permission(self, request) -> bool:
        return request.user.has_perm("fulfillment.pick_shipment")

    def has_merge_permission(self, request) -> bool:
        return request.user.has_perm("fulfillment.merge_shipment")

    @admin.action(description=_("生成拣货波次并打印拣货单"), permissions=["pick"])
    def start_pick_wave(self, request, queryset):
        shipments = list(queryset.select_related("warehouse").order_by("pk"))
        warehouses = {s.warehouse for s in shipments}
        if len(warehouses) != 1:
            self.message_user(
                request, gettext("一个拣货波次只能包含同一仓库的包裹，请按仓库筛选后再选"), messages.ERROR
            )
            return None
        try:
            wave = services.pick_wave_start(
                warehouse=warehouses.pop(), shipments=shipments, actor=Actor.staff(request.user)
            )
        except DomainError as err:
            self.message_user(request, error_text(err), messages.ERROR)
            return None
        self.message_user(
            request, gettext("已生成拣货波次 %(no)s（%(n)d 个包裹）") % {"no": wave.wave_no, "n": len(shipments)}
        )
        return HttpResponseRedirect(reverse("admin:fulfillment_pickwave_picklist", args=[wave.pk]))

    @admin.action(description=_("打包（已验货的包裹）"), permissions=["pick"])
    def pack_selected(self, request, queryset):
        actor = Actor.staff(request.user)
        run_for_each(
            self,
            request,
            queryset,
            lambda shipment: services.shipment_pack(shipment=shipment, actor=actor),
            done_message=gettext("已打包 %(n)d 个包裹"),
            label=lambda shipment: shipment.shipment_no,
        )

    @admin.action(description=_("合并包裹（合单）"), permissions=["merge"])
    def merge_selected(self, request, queryset):
        try:
            target = services.shipments_merge(shipments=list(queryset.order_by("pk")), actor=Actor.staff(request.user))
        except DomainError as err:
            self.message_user(request, error_text(err), messages.ERROR)
            return
        self.message_user(request, gettext("已合并为包裹 %(no)s") % {"no": target.shipment_no})

    # --- per-parcel pages: 验货, 打包, 发货, 更正运单号 ---

    def get_urls(self):
        def view(name, func):
            return path(
                f"<int:shipment_id>/{name}/",
                self.admin_site.admin_view(func),
                name=f"fulfillment_shipment_{name.replace('-', '_')}",
            )

        own = [
            view("scan", self.scan_view),
            view("pack", self.pack_view),
            view("ship", self.ship_view),
            view("correct-tracking", self.correct_tracking_view),
        ]
        return [*own, *super().get_urls()]

    def _shipment(self, request, shipment_id: int) -> Shipment:
        shipment = self.get_object(request, str(shipment_id))
        if shipment is None:
            raise Http404
        if not self.has_view_permission(request, shipment):
            raise PermissionDenied
        return shipment

    def _page(self, request, template: str, shipment: Shipment, title: str, **context) -> TemplateResponse:
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": shipment,
                "title": title,
                "change_url": reverse("admin:fulfillment_shipment_change", args=[shipment.pk]),
                **context,
            },
        )

    def _to_change_page(self, shipment: Shipment) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:fulfillment_shipment_change", args=[shipment.pk]))

    def scan_view(self, request: HttpRequest, shipment_id: int) -> HttpResponse:
        """验货: a scanner types a barcode (or a person a SKU code) and Enter; each scan is one unit."""
        shipment = self._shipment(request, shipment_id)
        here = reverse("admin:fulfillment_shipment_scan", args=[shipment.pk])
        if request.method == "POST":
            code = request.POST.get("code", "")
            try:
                line = services.shipment_scan(shipment=shipment, code=code, actor=Actor.staff(request.user))
            except DomainError as err:
                self.message_user(request, "✘ " + error_text(err), messages.ERROR)
            else:
                self.message_user(
                    request,
                    gettext("✔ %(sku)s 已扫 %(done)d / %(need)d")
                    % {"sku": line.item_code, "done": line.packed_quantity, "need": line.quantity},
                )
            return HttpResponseRedirect(here)
        lines = list(shipment.lines.select_related("order", "order_line__sku", "sku"))
        scanned = sum(line.packed_quantity for line in lines)
        needed = sum(line.quantity for line in lines)
        return self._page(
            request,
            "admin/fulfillment/shipment/scan.html",
            shipment,
            gettext("验货 %(no)s") % {"no": shipment.shipment_no},
            lines=lines,
            scanned=scanned,
            needed=needed,
            can_scan=shipment.status in (SS.PENDING, SS.PICKING),
            can_pack=shipment.status == SS.PICKING and scanned == needed,
        )

    def pack_view(self, request: HttpRequest, shipment_id: int) -> HttpResponse:
        shipment = self._shipment(request, shipment_id)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:fulfillment_shipment_scan", args=[shipment.pk]))
        try:
            services.shipment_pack(shipment=shipment, actor=Actor.staff(request.user))
        except DomainError as err:
            self.message_user(request, error_text(err), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:fulfillment_shipment_scan", args=[shipment.pk]))
        self.message_user(request, gettext("包裹 %(no)s 已打包，可以发货") % {"no": shipment.shipment_no})
        return self._to_change_page(shipment)

    def ship_view(self, request: HttpRequest, shipment_id: int) -> HttpResponse:
        shipment = self._shipment(request, shipment_id)
        units: dict[str, list] = {}
        for line in shipment.lines.select_related("order_line__sku", "sku"):
            entry = units.setdefault(line.item_code, [f"{line.item.name} {line.item.spec}", 0])
            entry[1] += line.quantity
        skus = [(code, name.strip(), qty) for code, (name, qty) in units.items()]
        form = ShipForm(request.POST or None, skus=skus)
        if request.method == "POST" and form.is_valid():
            try:
                shipped, _changed = services.shipment_ship(
                    shipment=shipment,
                    actor=Actor.staff(request.user),
                    carrier=form.cleaned_data["carrier"],
                    tracking_no=form.cleaned_data["tracking_no"],
                    lines=form.ship_lines(),
                )
            except DomainError as err:
                self.message_user(request, error_text(err), messages.ERROR)
                form_add_domain_error(form, err)
            else:
                self.message_user(
                    request,
                    gettext("包裹 %(no)s 已发货：%(carrier)s %(tracking)s")
                    % {
                        "no": shipped.shipment_no,
                        "carrier": shipped.get_carrier_display(),
                        "tracking": shipped.tracking_no,
                    },
                )
                return self._to_change_page(shipped)
        return self._page(
            request,
            "admin/fulfillment/shipment/action_form.html",
            shipment,
            gettext("发货 %(no)s") % {"no": shipment.shipment_no},
            form=form,
            submit_label=gettext("确认发货"),
            intro=gettext("选择承运商并填写运单号。只发部分商品时改小数量，其余留在一个新的待拣货包裹里。"),
        )

    def correct_tracking_view(self, request: HttpRequest, shipment_id: int) -> HttpResponse:
        shipment = self._shipment(request, shipment_id)
        initial = {"carrier": shipment.carrier, "tracking_no": shipment.tracking_no}
        form = CorrectTrackingForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                services.shipment_correct_tracking(
                    shipment=shipment,
                    actor=Actor.staff(request.user),
                    carrier=form.cleaned_data["carrier"],
                    tracking_no=form.cleaned_data["tracking_no"],
                )
            except DomainError as err:
                self.message_user(request, error_text(err), messages.ERROR)
                form_add_domain_error(form, err)
            else:
                self.message_user(request, gettext("运单号已更正，新旧单号已记入订单时间线"))
                return self._to_change_page(shipment)
        return self._page(
            request,
            "admin/fulfillment/shipment/action_form.html",
            shipment,
            gettext("更正运单号 %(no)s") % {"no": shipment.shipment_no},
            form=form,
            submit_label=gettext("更正"),
            intro=gettext("在快递的第一条轨迹到达之前可以更正；新旧单号都会记入订单时间线。"),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        shipment = self.get_object(request, object_id)
        user = request.user
        buttons = {}
        if shipment is not None:
            buttons = {
                "can_scan": shipment.status in (SS.PENDING, SS.PICKING) and user.has_perm("fulfillment.pick_shipment"),
                "can_ship": shipment.is_open and user.has_perm("orders.ship_order"),
                "can_correct": shipment.status == SS.SHIPPED and user.has_perm("fulfillment.correct_tracking"),
                "wave_url": (
                    reverse("admin:fulfillment_pickwave_picklist", args=[shipment.wave_id]) if shipment.wave_id else ""
                ),
            }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **buttons})


# --- pick waves and the pick list -----------------------------------------------------------


@dataclass
class PickRow:
    """One stop on the walk: a SKU at its bin, how many units, and whose they are."""

    bin_location: str
    sku_code: str
    name: str
    barcode: str
    units: int = 0
    owners: list[tuple[str, str, int]] = field(default_factory=list)  # (order_no, shipment_no, units)


def pick_list(wave: PickWave) -> dict:
    """The wave's units grouped by (bin, SKU) in walking order (bins sorted, unbinned last),
    each with the orders and parcels they go to; and per parcel, what goes in it."""
    lines = (
        ShipmentLine.objects.filter(shipment__wave=wave)
        .exclude(shipment__status=SS.CANCELLED)
        .select_related("order", "shipment", "order_line__sku", "sku")
        .order_by("shipment__shipment_no", "id")
    )
    rows: dict[tuple[str, str], PickRow] = {}
    parcels: dict[str, dict] = {}
    for line in lines:
        sku = line.item
        key = (sku.bin_location, line.item_code)
        row = rows.get(key)
        if row is None:
            row = rows[key] = PickRow(
                bin_location=sku.bin_location,
                sku_code=line.item_code,
                name=f"{line.item.name} {line.item.spec}".strip(),
                barcode=sku.barcode,
            )
        row.units += line.quantity
        row.owners.append((line.order.order_no, line.shipment.shipment_no, line.quantity))
        parcel = parcels.setdefault(
            line.shipment.shipment_no, {"shipment_no": line.shipment.shipment_no, "orders": [], "contents": []}
        )
        if line.order.order_no not in parcel["orders"]:
            parcel["orders"].append(line.order.order_no)
        parcel["contents"].append(f"{line.item_code}×{line.quantity}")
    ordered = sorted(rows.values(), key=lambda r: (r.bin_location == "", r.bin_location, r.sku_code))
    return {
        "rows": ordered,
        "parcels": list(parcels.values()),
        "parcel_count": len(parcels),
        "order_count": len({owner[0] for row in ordered for owner in row.owners}),
        "sku_count": len({row.sku_code for row in ordered}),
        "unit_count": sum(row.units for row in ordered),
    }


@admin.register(PickWave)
class PickWaveAdmin(ReadOnlyAdmin):
    list_display = ["wave_no", "warehouse", "parcels", "created_by", "created_at", "pick_list_link"]
    list_filter = ["warehouse"]
    search_fields = ["=wave_no"]
    list_select_related = ["warehouse", "created_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(parcel_count=Count("shipments"))

    @admin.display(description=_("包裹数"), ordering="parcel_count")
    def parcels(self, wave: PickWave) -> int:
        return wave.parcel_count

    @admin.display(description=_("拣货单"))
    def pick_list_link(self, wave: PickWave):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:fulfillment_pickwave_picklist", args=[wave.pk]), gettext("打开拣货单")
        )

    def get_urls(self):
        picklist = path(
            "<int:wave_id>/pick-list/",
            self.admin_site.admin_view(self.pick_list_view),
            name="fulfillment_pickwave_picklist",
        )
        return [picklist, *super().get_urls()]

    def pick_list_view(self, request: HttpRequest, wave_id: int) -> HttpResponse:
        """拣货单: an A4 page to print and walk with."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        wave = PickWave.objects.select_related("warehouse", "created_by").filter(pk=wave_id).first()
        if wave is None:
            raise Http404
        return TemplateResponse(
            request,
            "admin/fulfillment/pickwave/pick_list.html",
            {
                **self.admin_site.each_context(request),
                "wave": wave,
                "printed_at": timezone.now(),
                "shipments_url": reverse("admin:fulfillment_shipment_changelist") + f"?wave__id__exact={wave.pk}",
                **pick_list(wave),
            },
        )


# --- customer service's exception queue ------------------------------------------------------


class OpenCaseFilter(admin.SimpleListFilter):
    title = _("处理状态")
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", _("未处理")), ("no", _("已处理"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


class ResolveForm(forms.ModelForm):
    """The case page's only inputs: the outcome and a note, saved by logistics_exception_resolve."""

    outcome = forms.ChoiceField(label=_("处理结果"), choices=[("", "---------"), *LogisticsException.Outcome.choices])

    class Meta:
        model = LogisticsException
        fields = ["outcome", "note"]


@admin.register(LogisticsException)
class LogisticsExceptionAdmin(NoDeleteMixin, admin.ModelAdmin):
    """物流异常队列: the open cases first, the oldest first; take one (认领), call, resolve."""

    form = ResolveForm
    list_display = [
        "opened_at",
        "kind",
        "shipment_link",
        "order_nos",
        "shipment_status",
        "last_event",
        "owner",
        "state",
        "outcome",
    ]
    list_filter = [OpenCaseFilter, "kind", ("owner", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=shipment__shipment_no", "=shipment__tracking_no"]
    list_select_related = ["shipment", "owner"]
    ordering = [F("resolved_at").asc(nulls_first=True), "opened_at", "id"]
    actions = ["claim_selected"]
    readonly_fields = [
        "shipment_link",
        "order_nos",
        "shipment_status",
        "tracking",
        "kind",
        "last_event",
        "owner",
        "opened_at",
        "resolved_at",
        "resolved_by",
    ]

    def get_fields(self, request, obj=None):
        return [*self.readonly_fields, "outcome", "note"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.resolved_at is None and self._can_resolve(request):
            return self.readonly_fields
        return [*self.readonly_fields, "outcome", "note"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("shipment__lines", queryset=ShipmentLine.objects.select_related("order").order_by("id"))
            )
        )

    def _can_resolve(self, request) -> bool:
        return request.user.has_perm("fulfillment.resolve_exception")

    def has_add_permission(self, request) -> bool:
        return False  # the clock and the tracking pushes open cases

    def has_change_permission(self, request, obj=None) -> bool:
        return self._can_resolve(request) and (obj is None or obj.resolved_at is None)

    def has_resolve_permission(self, request) -> bool:
        return self._can_resolve(request)

    @admin.display(description=_("包裹"), ordering="shipment__shipment_no")
    def shipment_link(self, case: LogisticsException):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:fulfillment_shipment_change", args=[case.shipment_id]),
            case.shipment.shipment_no,
        )

    @admin.display(description=_("订单号"))
    def order_nos(self, case: LogisticsException):
        orders = {line.order_id: line.order.order_no for line in case.shipment.lines.all()}
        return format_html_join(
            LINE_BREAK,
            '<a href="{}">{}</a>',
            ((reverse("admin:orders_order_change", args=[pk]), no) for pk, no in sorted(orders.items())),
        )

    @admin.display(description=_("包裹状态"))
    def shipment_status(self, case: LogisticsException):
        shipment = case.shipment
        text = status_badge_html(shipment)
        if shipment.tracking_no:
            return format_html("{}<br>{} {}", text, shipment.get_carrier_display(), shipment.tracking_no)
        return text

    @admin.display(description=_("物流轨迹"))
    def tracking(self, case: LogisticsException):
        events = case.shipment.tracking_events.order_by("-time", "-id")[:10]
        return format_html_join(
            LINE_BREAK, "{} {}", ((f"{timezone.localtime(e.time):%m-%d %H:%M}", e.context) for e in events)
        ) or gettext("暂无轨迹")

    @admin.display(description=_("状态"), ordering="resolved_at")
    def state(self, case: LogisticsException):
        if case.resolved_at is None:
            return format_html('<b style="color:#c62828">{}</b>', gettext("待处理"))
        return gettext("已处理")

    @admin.action(description=_("认领（由我负责）"), permissions=["resolve"])
    def claim_selected(self, request, queryset):
        actor = Actor.staff(request.user)
        run_for_each(
            self,
            request,
            queryset,
            lambda case: services.logistics_exception_claim(case=case, actor=actor),
            done_message=gettext("已认领 %(n)d 个异常"),
            label=lambda case: f"{case.shipment.shipment_no} {case.get_kind_display()}",
        )

    def save_model(self, request, obj, form, change):
        """The form only collects the outcome; the service resolves (lock, who, when)."""
        try:
            services.logistics_exception_resolve(
                case=obj,
                actor=Actor.staff(request.user),
                outcome=form.cleaned_data["outcome"],
                note=form.cleaned_data.get("note") or "",
            )
        except DomainError as err:
            self.message_user(request, error_text(err), messages.ERROR)
            request.resolve_refused = True

    def log_change(self, request, obj, message):
        if not getattr(request, "resolve_refused", False):
            return super().log_change(request, obj, message)

    def response_change(self, request, obj):
        if getattr(request, "resolve_refused", False):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)


# --- the tracking provider's inbox and outbox, and the warehouses' API keys -------------------


@admin.register(TrackingPush)
class TrackingPushAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "provider", "status", "shipment", "events_added"]
    list_filter = ["status", "provider"]
    search_fields = ["=shipment__shipment_no", "=shipment__tracking_no"]
    list_select_related = ["shipment"]
    date_hierarchy = "received_at"


@admin.register(TrackingSubscription)
class TrackingSubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "shipment", "carrier", "tracking_no", "status", "attempts", "last_error"]
    list_filter = ["status", "carrier"]
    search_fields = ["=tracking_no", "=shipment__shipment_no"]
    list_select_related = ["shipment"]


@admin.register(WarehouseAPIKey)
class WarehouseAPIKeyAdmin(NoDeleteMixin, APIKeyModelAdmin):
    """A WMS's or handheld scanner's key: shown once when added (the library's own pattern),
    stored hashed; revoke instead of deleting."""

    list_display = [*APIKeyModelAdmin.list_display, "warehouse"]
    list_filter = [*APIKeyModelAdmin.list_filter, "warehouse"]
