"""Warehouse staff's view of the catalogue and stock. On-hand stock is never typed into a
form: it changes through stock_adjust (goods in, stock count, write-off), which locks the
row, refuses to go below what orders have reserved, and writes a StockMovement.
"""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime
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
    list_display = ["code", "name", "spec", "price", "active"]
    list_filter = ["active"]
    search_fields = ["code", "name"]
    inlines = [StockLevelInline]


@admin.register(Warehouse)
class WarehouseAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["code", "name", "active"]


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
