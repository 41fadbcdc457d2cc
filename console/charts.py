"""ECharts options built on the server from the dashboard's figures; the page only draws them.

The ECharts file is ours (console/static/vendor/echarts/), so the charts work offline.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from .analytics import RateRow, WarehouseTimeliness

ECHARTS_JS = "vendor/echarts/echarts-5.6.0.min.js"


def rate_chart(rows: list[RateRow], *, title: str, axis_name: str) -> dict:
    """Bars of orders (left axis) and a line of the unpaid rate in % (right axis)."""
    return {
        "title": {"text": title, "left": "center", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0, "data": [_("下单数"), _("未付款数"), _("未付款率 %")]},
        "grid": {"left": 50, "right": 50, "top": 40, "bottom": 60},
        "xAxis": {"type": "category", "name": axis_name, "data": [row.key for row in rows]},
        "yAxis": [{"type": "value", "name": _("单")}, {"type": "value", "name": "%", "max": 100}],
        "series": [
            {
                "name": _("下单数"),
                "type": "bar",
                "data": [row.orders for row in rows],
                "itemStyle": {"color": "#90caf9"},
            },
            {
                "name": _("未付款数"),
                "type": "bar",
                "data": [row.unpaid for row in rows],
                "itemStyle": {"color": "#ef9a9a"},
            },
            {
                "name": _("未付款率 %"),
                "type": "line",
                "yAxisIndex": 1,
                "data": [row.rate for row in rows],
                "itemStyle": {"color": "#c62828"},
            },
        ],
    }


def timeliness_chart(rows: list[WarehouseTimeliness]) -> dict:
    return {
        "title": {"text": _("发货时效（付款 → 发货，小时）"), "left": "center", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0, "data": [_("平均小时"), _("最长小时"), _("超时发货包裹"), _("已超时未发包裹")]},
        "grid": {"left": 50, "right": 50, "top": 40, "bottom": 60},
        "xAxis": {"type": "category", "data": [row.warehouse for row in rows]},
        "yAxis": [{"type": "value", "name": _("小时")}, {"type": "value", "name": _("包裹")}],
        "series": [
            {
                "name": _("平均小时"),
                "type": "bar",
                "data": [row.avg_hours for row in rows],
                "itemStyle": {"color": "#1565c0"},
            },
            {
                "name": _("最长小时"),
                "type": "bar",
                "data": [row.max_hours for row in rows],
                "itemStyle": {"color": "#90caf9"},
            },
            {
                "name": _("超时发货包裹"),
                "type": "line",
                "yAxisIndex": 1,
                "data": [row.late_shipped for row in rows],
                "itemStyle": {"color": "#ef6c00"},
            },
            {
                "name": _("已超时未发包裹"),
                "type": "line",
                "yAxisIndex": 1,
                "data": [row.open_overdue for row in rows],
                "itemStyle": {"color": "#c62828"},
            },
        ],
    }
