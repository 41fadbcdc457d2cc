"""Read-only views of the sandbox gateway's books, so a developer can watch notifies go out.
The sandbox changes its rows through its own services only.
"""

from __future__ import annotations

from django.contrib import admin

from oms.admin_base import ReadOnlyAdmin

from .models import SandboxNotify, SandboxRefund, SandboxTrade


@admin.register(SandboxTrade)
class SandboxTradeAdmin(ReadOnlyAdmin):
    list_display = ["out_trade_no", "channel", "amount", "status", "trade_no", "time_expire", "paid_at", "created_at"]
    list_filter = ["channel", "status"]
    search_fields = ["out_trade_no", "trade_no"]


@admin.register(SandboxRefund)
class SandboxRefundAdmin(ReadOnlyAdmin):
    list_display = ["out_refund_no", "channel", "trade", "amount", "status", "refund_no", "created_at"]
    list_filter = ["channel", "status"]
    search_fields = ["out_refund_no", "refund_no"]
    list_select_related = ["trade"]


@admin.register(SandboxNotify)
class SandboxNotifyAdmin(ReadOnlyAdmin):
    list_display = ["dedupe_key", "channel", "event", "attempts", "last_status", "delivered_at", "gave_up_at"]
    list_filter = ["channel", "event"]
    search_fields = ["dedupe_key", "trade__out_trade_no"]
    list_select_related = ["trade"]
