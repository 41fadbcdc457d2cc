"""The reports' charts are drawn by ECharts in a real browser, from our own static file: each
chart box gets its canvas, and the page raises no script error."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPORTS = {
    "/admin/reminders/report/": ["rr-chart-hours", "rr-chart-outcomes"],
    "/admin/aftersales/report/": ["ar-chart-reason", "ar-chart-responsibility", "ar-chart-refund"],
    "/admin/dashboard/": ["unpaid-by-hour", "unpaid-by-province", "timeliness"],
}


def test_customer_service_sees_the_report_charts_drawn(live_server, staff_login, page):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    outside: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(live_server.url) else outside.append(request.url))
    staff_login(page, "客服", "kefu-charts")
    for url, charts in REPORTS.items():
        page.goto(f"{live_server.url}{url}")
        for key in charts:
            page.wait_for_selector(f"#chart-{key} canvas")
        assert page.evaluate("typeof echarts") == "object", url
    page.screenshot(path="/tmp/dashboard-charts.png", full_page=True)
    assert errors == [] and outside == []
