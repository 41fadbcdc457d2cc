"""Warehouse staff's view of the catalogue and stock. On-hand stock is never typed into a
form: it changes through stock_adjust (goods in, stock count, write-off), which locks the
row, refuses to go below what orders have reserved, and writes a StockMovement.
"""

import re

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from oms.admin_base import NoDeleteMixin, ReadOnlyAdmin, ReadOnlyInline
from oms.errors import DomainError

from .models import Reservation, Sku, StockLevel, StockMovement, Warehouse
from .services import stock_adjust


class StockLevelInline(ReadOnlyInline):
    model = StockLevel
    fields = ["warehouse", "on_hand", "reserved", "available"]
    readonly_fields = fields
    verbose_name_plural = _("库存（在“库存”中调整）")


@admin.register(Sku)
class SkuAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["code", "name", "spec", "price", "bin_location", "barcode", "active"]
    list_filter = ["active"]
    search_fields = ["code", "name", "=barcode", "=bin_location"]
    fields = ["code", "name", "spec", "price", "active", "bin_location", "barcode"]
    inlines = [StockLevelInline]


# The 34 provincial-level divisions as orders spell them; staff may type the short form (浙江).
PROVINCES = [
    "北京市", "天津市", "上海市", "重庆市", "河北省", "山西省", "辽宁省", "吉林省", "黑龙江省", "江苏省",
    "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省", "广东省", "海南省",
    "四川省", "贵州省", "云南省", "陕西省", "甘肃省", "青海省", "台湾省", "内蒙古自治区", "广西壮族自治区",
    "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区", "香港特别行政区", "澳门特别行政区",
]  # fmt: skip
PROVINCE_SHORT = {(name[:3] if name[:3] in ("黑龙江", "内蒙古") else name[:2]): name for name in PROVINCES}
SEPARATORS = re.compile(r"[,，、;；\s]+")


class ProvincesField(forms.CharField):
    """Covered provinces as one line of text ("浙江, 上海市") for the JSON list allocation reads."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return gettext("、").join(value)
        return value

    def to_python(self, value) -> list[str]:
        names = [part for part in SEPARATORS.split(super().to_python(value) or "") if part]
        resolved, unknown = [], []
        for name in names:
            full = name if name in PROVINCES else PROVINCE_SHORT.get(name)
            if full is None:
                unknown.append(name)
            elif full not in resolved:
                resolved.append(full)
        if unknown:
            raise forms.ValidationError(_("不认识的省份：%(names)s") % {"names": gettext("、").join(unknown)})
        return resolved


class WarehouseForm(forms.ModelForm):
    provinces = ProvincesField(
        label=_("覆盖省份"),
        required=False,
        widget=forms.TextInput(attrs={"size": 80}),
        help_text=_("用逗号或顿号分隔，例如：浙江、上海、江苏；分仓时优先选覆盖收货省份的仓"),
    )

    class Meta:
        model = Warehouse
        fields = ["code", "name", "active", "provinces", "priority"]


@admin.register(Warehouse)
class WarehouseAdmin(NoDeleteMixin, admin.ModelAdmin):
    form = WarehouseForm
    list_display = ["code", "name", "province_list", "priority", "active"]
    ordering = ["priority", "id"]

    @admin.display(description=_("覆盖省份"))
    def province_list(self, warehouse: Warehouse) -> str:
        return gettext("、").join(warehouse.provinces) or "—"


class StockAdjustForm(forms.ModelForm):
    """Adding a row (a SKU in a new warehouse) or changing one is always an adjustment."""

    delta = forms.IntegerField(label=_("变动数量"), help_text=_("入库为正数，报损/盘亏为负数"))
    reason = forms.ChoiceField(label=_("原因"), choices=StockMovement.Reason.choices)
    note = forms.CharField(label=_("备注"), max_length=200, required=False)

    class Meta:
        model = StockLevel
        fields = ["sku", "warehouse"]


@admin.register(StockLevel)
class StockLevelAdmin(NoDeleteMixin, admin.ModelAdmin):
    form = StockAdjustForm
    list_display = ["sku", "warehouse", "on_hand", "reserved", "available", "updated_at"]
    list_select_related = ["sku", "warehouse"]
    search_fields = ["sku__code", "sku__name"]
    list_filter = ["warehouse"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["on_hand", "reserved"]
        return ["sku", "warehouse", "on_hand", "reserved", "recent_movements"]

    def get_fields(self, request, obj=None):
        fields = ["sku", "warehouse", "on_hand", "reserved", "delta", "reason", "note"]
        return fields if obj is None else [*fields, "recent_movements"]

    @admin.display(description=_("最近变动"))
    def recent_movements(self, level: StockLevel):
        rows = level.movements.order_by("-created_at", "-id")[:10]
        url = reverse("admin:inventory_stockmovement_changelist") + f"?stock_level__id__exact={level.pk}"
        table = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    localtime(m.created_at).strftime("%Y-%m-%d %H:%M"),
                    m.get_reason_display(),
                    f"{m.delta:+d}",
                    m.on_hand_before,
                    m.on_hand_after,
                    m.actor_label,
                    m.note,
                )
                for m in rows
            ),
        )
        return format_html('<table>{}</table><a href="{}">{}</a>', table, url, _("全部变动"))

    def save_model(self, request, obj, form, change):
        try:
            movement = stock_adjust(
                sku=obj.sku,
                warehouse=obj.warehouse,
                delta=form.cleaned_data["delta"],
                reason=form.cleaned_data["reason"],
                note=form.cleaned_data["note"],
                actor_label=request.user.get_username(),
                user=request.user,
            )
        except DomainError as err:
            self.message_user(request, err.message, level=messages.ERROR)
            request.stock_adjust_refused = True
            return
        obj.pk = movement.stock_level_id
        obj.refresh_from_db()

    def log_addition(self, request, obj, message):
        if not getattr(request, "stock_adjust_refused", False):
            return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        if not getattr(request, "stock_adjust_refused", False):
            return super().log_change(request, obj, message)

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "stock_adjust_refused", False):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if getattr(request, "stock_adjust_refused", False):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "stock_level", "reason", "delta", "on_hand_before", "on_hand_after", "actor_label"]
    list_select_related = ["stock_level__sku", "stock_level__warehouse"]
    list_filter = ["reason"]
    search_fields = ["stock_level__sku__code", "actor_label", "note"]


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ["order_line", "stock_level", "quantity", "status", "created_at"]
    list_select_related = [
        "order_line__order",
        "stock_level__sku",
        "stock_level__warehouse",
    ]
    list_filter = ["status"]
