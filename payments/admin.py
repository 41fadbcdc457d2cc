from django.contrib import admin

from .models import Refund


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = [
        "out_refund_no",
        "order",
        "amount",
        "status",
        "reason",
        "requested_by",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["out_refund_no", "order__order_no"]
    readonly_fields = [
        "order",
        "out_refund_no",
        "amount",
        "reason",
        "status",
        "requested_by",
    ]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
