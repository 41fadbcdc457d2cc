from django.contrib import admin

from oms.admin_base import NoDeleteMixin, ReadOnlyAdmin

from .models import Reservation, Sku, StockLevel, Warehouse


class StockLevelInline(NoDeleteMixin, admin.TabularInline):
    model = StockLevel
    extra = 0
    readonly_fields = ["reserved"]


@admin.register(Sku)
class SkuAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["code", "name", "spec", "price", "active"]
    list_filter = ["active"]
    search_fields = ["code", "name"]
    inlines = [StockLevelInline]


@admin.register(Warehouse)
class WarehouseAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["code", "name", "active"]


@admin.register(StockLevel)
class StockLevelAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = [
        "sku",
        "warehouse",
        "on_hand",
        "reserved",
        "available",
        "updated_at",
    ]
    list_select_related = ["sku", "warehouse"]
    search_fields = ["sku__code", "sku__name"]
    readonly_fields = ["reserved"]


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ["order_line", "stock_level", "quantity", "status", "created_at"]
    list_select_related = [
        "order_line__order",
        "stock_level__sku",
        "stock_level__warehouse",
    ]
    list_filter = ["status"]
