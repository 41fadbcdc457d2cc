"""The operations dashboard (运营看板): a page in the admin, drawn with ECharts from our own static files."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from reminders.forms import ReportRangeForm

from .analytics import fulfillment_timeliness, unpaid_rate_by_hour, unpaid_rate_by_province
from .charts import ECHARTS_JS, rate_chart, timeliness_chart

# The same readers as the 催付 report: 客服, 运营, 主管.
DASHBOARD_PERMISSIONS = ("reminders.view_report",)


def can_see_dashboard(user) -> bool:
    return user.is_active and user.is_staff and any(user.has_perm(p) for p in DASHBOARD_PERMISSIONS)


def dashboard(request):
    if not can_see_dashboard(request.user):
        raise PermissionDenied
    form = ReportRangeForm(request.GET or None)
    start, end = form.date_range()
    by_hour = unpaid_rate_by_hour(start=start, end=end)
    by_province = unpaid_rate_by_province(start=start, end=end)
    timeliness = fulfillment_timeliness(start=start, end=end)
    context = {
        **admin.site.each_context(request),
        "title": _("运营看板"),
        "form": form,
        "start": start,
        "end": end,
        "echarts_js": ECHARTS_JS,
        "charts": {
            "unpaid-by-hour": rate_chart(by_hour, title=_("按下单时段的未付款率"), axis_name=_("时")),
            "unpaid-by-province": rate_chart(by_province, title=_("按省份的未付款率"), axis_name=_("省份")),
            "timeliness": timeliness_chart(timeliness),
        },
        "by_province": by_province,
        "timeliness": timeliness,
    }
    return TemplateResponse(request, "admin/console/dashboard.html", context)
