"""ECharts options built on the server from the figures of a page; the page only draws them.

The dashboard, the 催付 report and the after-sales report all draw with this one library. The
ECharts file is ours (console/static/vendor/echarts/), so the charts work offline. A page puts
`echarts_js` in its context and includes `admin/console/_chart.html` once per chart and
`admin/console/_charts_draw.html` once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from .analytics import RateRow, WarehouseTimeliness

ECHARTS_JS = "vendor/echarts/echarts-5.6.0.min.js"

PALETTE = ["#1565c0", "#6a1b9a", "#ef6c00", "#00838f", "#c62828", "#558b2f", "#757575", "#ad1457"]
TITLE_STYLE = {"left": "center", "textStyle": {"fontSize": 14}}


@dataclass(frozen=True)
class Chart:
    """What a page needs to draw one chart: the ECharts options and the height of its box, which
    grows with the number of bars of a horizontal chart."""

    options: dict
    height: int = 300


def horizontal_bar_chart(
    bars: list[tuple[str, float]], *, title: str, series_name: str, unit: str = "", colours: list[str] | None = None
) -> Chart:
    """One bar per (label, value), top to bottom in the order given (the table's order); `unit`
    follows each value on its bar ("%")."""
    options = {
        "color": colours or PALETTE,
        "title": {"text": title, **TITLE_STYLE},
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "grid": {"left": 10, "right": 60, "top": 36, "bottom": 10, "containLabel": True},
        "xAxis": {"type": "value", "minInterval": 1},
        "yAxis": {"type": "category", "inverse": True, "data": [label for label, _value in bars]},
        "series": [
            {
                "name": series_name,
                "type": "bar",
                "barMaxWidth": 22,
                "colorBy": "data",
                "data": [value for _label, value in bars],
                "label": {"show": True, "position": "right", "formatter": "{c}" + unit},
            }
        ],
    }
    return Chart(options=options, height=60 + 30 * max(len(bars), 1))


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
