"""Customer service in the admin: manual 催付 (with the duplicate warning), rules, the report."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages

from console.charts import ECHARTS_JS
from orders.models import OrderEvent
from orders.services import Actor, order_pay
from reminders.admin import reminder_links_for
from reminders.models import ManualReminder, Reminder, ReminderRule
from reminders.selectors import reminder_report
from reminders.services import manual_reminder_record, reminders_send_due
from tests.conftest import chart_options, script_sources
from workflows.cancellation import order_cancel

from .conftest import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def kefu_client(client, db):
    """A customer-service user with just the permissions the manual 催付 page needs."""
    user = User.objects.create_user("kefu", password="pw-12345678", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_order", "view_manualreminder", "add_manualreminder", "view_reminder"]
        )
    )
    client.force_login(user)
    return client


def manual_form(order, **overrides) -> dict[str, str]:
    return {
        "order": str(order.pk),
        "channel": "phone",
        "outcome": "payment_tool",
        "note": "U盾证书过期，已指导更新后再付",
        "promised_pay_at_0": "2026-03-10",
        "promised_pay_at_1": "20:00:00",
        **overrides,
    }


def warnings(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "warning"]


def test_manual_催付_records_an_event_on_the_timeline(kefu_client, clock, make_order):
    clock(at(3, 10, 15, 0))
    order = make_order()
    page = kefu_client.get(f"/admin/reminders/manualreminder/add/?order={order.pk}")
    assert page.status_code == 200
    assert order.order_no in page.content.decode()  # prefilled
    assert "余额不足/支付受限" in page.content.decode()

    response = kefu_client.post(f"/admin/reminders/manualreminder/add/?order={order.pk}", manual_form(order))
    assert response.status_code == 302
    assert response["Location"] == f"/admin/orders/order/{order.pk}/change/"
    assert warnings(response) == []  # nobody reminded this order today

    record = ManualReminder.objects.get()
    assert (record.channel, record.outcome, record.created_by.username) == ("phone", "payment_tool", "kefu")
    assert record.promised_pay_at == at(3, 10, 20, 0)
    event = order.events.get(type=OrderEvent.Type.MANUAL_REMINDER)
    assert (event.actor_kind, event.actor_label, event.reason) == ("staff", "kefu", "支付工具问题（U盾/证书）")
    assert event.data["note"] == "U盾证书过期，已指导更新后再付"
    assert event.data["promised_pay_at"].startswith("2026-03-10T")


def test_duplicate_warning_before_and_after_saving(kefu_client, sms, only_rules, clock, make_order, admin_user):
    only_rules("remind_after_created")
    clock(at(3, 10, 10, 0))
    order = make_order()
    clock(at(3, 10, 10, 30))
    reminders_send_due()  # an automatic 催付 today
    manual_reminder_record(order=order, channel="im", outcome="considering", actor=Actor.staff(admin_user))

    clock(at(3, 10, 15, 0))
    page = kefu_client.get(f"/admin/reminders/manualreminder/add/?order={order.pk}")
    [before] = warnings(page)
    assert "避免重复催付" in before and "今天已催付 2 次" in before
    assert "10:30 短信（自动·下单30分钟未付款提醒）" in before
    assert "在线客服/IM（人工·admin 还在考虑/比价）" in before

    response = kefu_client.post("/admin/reminders/manualreminder/add/", manual_form(order))
    assert response.status_code == 302
    [after] = warnings(response)
    assert "已保存" in after and "今天已催付 2 次" in after
    assert ManualReminder.objects.count() == 2
    assert kefu_client.get(response["Location"]).status_code == 200  # the order page shows the warning

    clock(at(3, 11, 9, 0))  # tomorrow: no warning
    assert warnings(kefu_client.get(f"/admin/reminders/manualreminder/add/?order={order.pk}")) == []


def test_outcome_is_required(kefu_client, make_order):
    order = make_order()
    response = kefu_client.post("/admin/reminders/manualreminder/add/", manual_form(order, outcome=""))
    assert response.status_code == 200
    assert not ManualReminder.objects.exists()


def test_manual_records_are_append_only(admin_client, admin_user, make_order):
    order = make_order()
    record = manual_reminder_record(order=order, channel="phone", outcome="unreachable", actor=Actor.staff(admin_user))
    page = admin_client.get(f"/admin/reminders/manualreminder/{record.pk}/change/")
    assert page.status_code == 200
    assert 'name="outcome"' not in page.content.decode()  # read-only
    assert admin_client.post(f"/admin/reminders/manualreminder/{record.pk}/delete/").status_code == 403


def test_links_for_the_order_page(admin_client, sms, only_rules, clock, make_order, django_assert_num_queries):
    only_rules("order_confirmation")
    clock(at(3, 10, 10, 0))
    order = make_order()
    reminders_send_due()
    with django_assert_num_queries(2):
        html = reminder_links_for(order)
    assert "已发送 1" in html and "无失败" in html
    assert f"/admin/reminders/manualreminder/add/?order={order.pk}" in html
    log_url = f"/admin/reminders/reminder/?order__id__exact={order.pk}"
    assert log_url in html
    page = admin_client.get(log_url)
    assert page.status_code == 200 and order.order_no in page.content.decode()
    assert admin_client.get(f"/admin/reminders/manualreminder/?order__id__exact={order.pk}").status_code == 200


def test_rule_form_checks_the_template_and_the_timing(admin_client, rules):
    base = {
        "name": "测试规则",
        "purpose": "payment_reminder",
        "kind": "after_created",
        "offset_minutes": "60",
        "channel": "sms",
        "order_types": ["promo"],
        "template": "订单 {{ order_no }} 待付款 {% if %}",
        "active": "on",
    }
    response = admin_client.post("/admin/reminders/reminderrule/add/", base)
    assert response.status_code == 200 and "模板有误" in response.content.decode()

    response = admin_client.post(
        "/admin/reminders/reminderrule/add/", base | {"template": "ok {{ order_no }}", "kind": "after_closed"}
    )
    assert response.status_code == 200 and "关单通知只能用" in response.content.decode()

    response = admin_client.post("/admin/reminders/reminderrule/add/", base | {"template": "ok {{ order_no }}"})
    assert response.status_code == 302
    rule = ReminderRule.objects.get(name="测试规则")
    assert (rule.order_types, rule.offset_minutes, rule.code) == (["promo"], 60, None)
    assert admin_client.get("/admin/reminders/reminderrule/").status_code == 200


@pytest.fixture
def report_data(sms, rules, clock, make_order, admin_user):
    """Four orders on 3月10日: A reminded at 10:30 then paid, B reminded and closed unpaid,
    C paid at once, D called by customer service and then paid."""
    ReminderRule.objects.exclude(code="remind_after_created").update(active=False)
    clock(at(3, 10, 10, 0))
    a, b, c, d = (make_order() for _ in range(4))
    order_pay(order=c, amount=c.payable_total, actor=Actor.gateway("test"))
    clock(at(3, 10, 10, 30))
    reminders_send_due()
    clock(at(3, 10, 10, 40))
    order_pay(order=a, amount=a.payable_total, actor=Actor.gateway("test"))
    manual_reminder_record(order=d, channel="phone", outcome="funds_limited", actor=Actor.staff(admin_user))
    clock(at(3, 10, 11, 0))
    manual_reminder_record(order=b, channel="phone", outcome="unreachable", actor=Actor.staff(admin_user))
    order_pay(order=d, amount=d.payable_total, actor=Actor.gateway("test"))
    clock(at(3, 11, 10, 1))
    order_cancel(order=b, actor=Actor.system("close_expired_orders"), reason="timeout")
    return a, b, c, d


def test_report_numbers(report_data, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        report = reminder_report(start=at(3, 10, 0).date(), end=at(3, 10, 0).date())
    assert (report.orders, report.paid, report.unpaid, report.closed_unpaid) == (4, 3, 1, 1)
    assert str(report.unpaid_rate) == "25.0"
    # reminded: A, B and D (the 30-minute reminder went to all unpaid orders); A and D paid afterwards
    assert (report.reminded, report.recovered, str(report.recovery_rate)) == (3, 2, "66.7")
    assert (report.manual_reminded, report.manual_recovered) == (2, 1)
    assert report.outcome_totals == {"funds_limited": 1, "unreachable": 1}
    assert report.outcomes_by_day == {at(3, 10, 0).date(): {"funds_limited": 1, "unreachable": 1}}
    hour10 = report.hours[10]
    assert (hour10.sent, hour10.paid_after) == (3, 2)
    assert [row.hour for row in report.best_hours] == [10]
    assert report.status_counts == {"sent": 3}


def test_report_page_renders_with_numbers(admin_client, report_data):
    response = admin_client.get("/admin/reminders/report/?start=2026-03-10&end=2026-03-10")
    assert response.status_code == 200
    page = response.content.decode()
    assert "催付报表" in page
    assert '<div class="big" id="rr-orders">4</div>' in page
    assert '<div class="big" id="rr-unpaid-rate">25.0%</div>' in page
    assert '<div class="big" id="rr-recovery-rate">66.7%</div>' in page
    assert "10:00–10:59（付款 2 / 发送 3，66.7%）" in page
    assert 'id="chart-rr-chart-hours"' in page and "余额不足/支付受限" in page
    # nothing is loaded from another host (a CDN); not `"cdn" not in page`, which a random CSRF token can break
    assert re.findall(r"""(?:src|href)=["']?((?:https?:)?//[^"'\s>]*)""", page) == []


def test_report_charts_are_echarts_from_our_static_files(admin_client, report_data):
    page = admin_client.get("/admin/reminders/report/?start=2026-03-10&end=2026-03-10").content.decode()
    assert script_sources(page).count(f"/static/{ECHARTS_JS}") == 1
    assert all(src.startswith("/static/") for src in script_sources(page))  # no other host
    hours = chart_options(page, "rr-chart-hours")
    sent, paid = hours["series"]
    assert hours["xAxis"]["data"] == list(range(24))
    assert sent["data"][10] == 3 and paid["data"][10] == 2 and sum(sent["data"]) == 3
    outcomes = chart_options(page, "rr-chart-outcomes")
    totals = dict(zip(outcomes["yAxis"]["data"], outcomes["series"][0]["data"], strict=True))
    assert totals["余额不足/支付受限"] == 1 and sum(totals.values()) == 2
    by_day = chart_options(page, "rr-chart-outcomes-by-day")
    assert by_day["xAxis"]["data"] == ["03-10"]
    assert sorted(series["data"][0] for series in by_day["series"] if series["data"][0]) == [1, 1]
    assert all(series["stack"] == "outcomes" for series in by_day["series"])


def test_report_chart_titles_follow_the_language(admin_client, report_data):
    english = admin_client.get("/admin/reminders/report/", headers={"accept-language": "en"}).content.decode()
    hours = chart_options(english, "rr-chart-hours")
    assert hours["title"]["text"] == "Reminders and payments by hour"
    assert hours["legend"]["data"] == ["Reminders sent", "Last reminder before payment"]


def test_report_defaults_to_the_last_14_days(admin_client, admin_user, clock, report_data):
    clock(at(3, 20, 9, 0))
    page = admin_client.get("/admin/reminders/report/").content.decode()
    assert "2026-03-07 至 2026-03-20" in page
    assert '<div class="big" id="rr-orders">4</div>' in page
    clock(at(3, 10, 9, 0) + timedelta(days=30))
    admin_client.force_login(admin_user)  # a month later the idle session has long expired
    assert '<div class="big" id="rr-orders">0</div>' in admin_client.get("/admin/reminders/report/").content.decode()


def test_report_needs_permission(kefu_client, client, db):
    assert kefu_client.get("/admin/reminders/report/").status_code == 200  # view_reminder is enough
    outsider = User.objects.create_user("temp", password="pw-12345678", is_staff=True)
    client.force_login(outsider)
    assert client.get("/admin/reminders/report/").status_code == 403


def test_reminder_log_is_read_only(admin_client, sms, only_rules, clock, make_order):
    only_rules("order_confirmation")
    clock(at(3, 10, 10, 0))
    make_order()
    reminders_send_due()
    reminder = Reminder.objects.get()
    assert admin_client.get("/admin/reminders/reminder/add/").status_code == 403
    assert admin_client.post(f"/admin/reminders/reminder/{reminder.pk}/delete/").status_code == 403
    assert admin_client.get(f"/admin/reminders/reminder/{reminder.pk}/change/").status_code == 200


def test_admin_index_links_the_report_and_the_rules(admin_client, rules):
    page = admin_client.get("/admin/").content.decode()
    assert "/admin/reminders/report/" in page and "催付报表" in page
    rules_page = admin_client.get("/admin/reminders/reminderrule/").content.decode()
    assert "下单30分钟未付款提醒" in rules_page and "付款截止前2小时提醒" in rules_page


def test_the_opt_out_screen_goes_through_the_services(admin_client, admin_user):
    from reminders.models import CustomerContactPreference

    response = admin_client.post(
        "/admin/reminders/customercontactpreference/add/",
        {"mobile": "13900001111", "opted_out": "on", "reason": "回复退订"},
    )
    assert response.status_code == 302
    preference = CustomerContactPreference.objects.get(mobile="13900001111")
    assert (preference.opted_out, preference.updated_by) == (True, admin_user)
    response = admin_client.post(
        f"/admin/reminders/customercontactpreference/{preference.pk}/change/", {"reason": "顾客来电要求恢复"}
    )
    assert response.status_code == 302
    preference.refresh_from_db()
    assert (preference.opted_out, preference.reason) == (False, "顾客来电要求恢复")
