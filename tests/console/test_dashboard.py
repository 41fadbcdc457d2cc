"""The operations dashboard: unpaid rate by hour and province, fulfillment timeliness, ECharts offline."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from console.analytics import fulfillment_timeliness, unpaid_rate_by_hour, unpaid_rate_by_province
from console.charts import ECHARTS_JS
from orders.events import Actor
from orders.services import order_pay
from tests.conftest import force_login_verified
from tests.fulfillment.conftest import order_for
from tests.fulfillment.factories import ship_whole_order

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_unpaid_rate_by_order_hour_and_province(hangzhou, stocked):
    shirt = stocked({hangzhou: 100})
    with time_machine.travel(datetime(2026, 12, 1, 9, 30, tzinfo=SHANGHAI)):
        paid = order_for([(shirt, 1)], province="浙江省")
        order_pay(order=paid, amount=paid.payable_total, actor=Actor.gateway("alipay"))
        order_for([(shirt, 1)], province="浙江省", mobile="13900139000")  # never paid
    with time_machine.travel(datetime(2026, 12, 1, 21, 5, tzinfo=SHANGHAI)):
        order_for([(shirt, 1)], province="广东省", mobile="13700137000")
        order_for([(shirt, 1)], province="广东省", mobile="13600136000", payment_method="cod")  # not counted
    day = datetime(2026, 12, 1).date()
    hours = {row.key: row for row in unpaid_rate_by_hour(start=day, end=day)}
    assert (hours["9"].orders, hours["9"].unpaid, hours["9"].rate) == (2, 1, 50.0)
    assert (hours["21"].orders, hours["21"].unpaid, hours["21"].rate) == (1, 1, 100.0)
    assert hours["3"].orders == 0 and len(hours) == 24
    provinces = {row.key: (row.orders, row.unpaid) for row in unpaid_rate_by_province(start=day, end=day)}
    assert provinces == {"浙江省": (2, 1), "广东省": (1, 1)}


def test_fulfillment_timeliness_by_warehouse(hangzhou, stocked):
    shirt = stocked({hangzhou: 100})
    start = timezone.now()
    on_time = order_for([(shirt, 1)])
    order_pay(order=on_time, amount=on_time.payable_total, actor=Actor.gateway("alipay"))
    late = order_for([(shirt, 1)], mobile="13900139000")
    order_pay(order=late, amount=late.payable_total, actor=Actor.gateway("alipay"))
    with time_machine.travel(start + timedelta(hours=10)):
        ship_whole_order(on_time, actor=Actor.system("test"))
    with time_machine.travel(start + timedelta(hours=50)):  # past the 48 h ship-by
        ship_whole_order(late, actor=Actor.system("test"))
        (row,) = fulfillment_timeliness(start=start.date(), end=(start + timedelta(days=3)).date())
    assert row.warehouse == "HZ01" and row.shipped == 2 and row.late_shipped == 1
    assert 29.5 <= row.avg_hours <= 30.5 and 49.5 <= row.max_hours <= 50.5


def test_the_page_draws_with_our_own_echarts(client, hangzhou, stocked):
    assert finders.find(ECHARTS_JS), "ECharts must be in our static files (no CDN)"
    user = User.objects.create_user("ops", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="运营"))
    force_login_verified(client, user)
    page = client.get(reverse("console-dashboard"))
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/static/{ECHARTS_JS}" in html and "http" not in html.split(ECHARTS_JS)[0].rsplit("<script", 1)[1]
    options = json.loads(html.split('id="unpaid-by-hour" type="application/json">')[1].split("</script>")[0])
    assert len(options["xAxis"]["data"]) == 24
    warehouse = User.objects.create_user("wh", password="x", is_staff=True)
    warehouse.groups.add(Group.objects.get(name="仓储"))
    force_login_verified(client, warehouse)
    assert client.get(reverse("console-dashboard")).status_code == 403
