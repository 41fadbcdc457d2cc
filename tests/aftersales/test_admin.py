"""The 售后 screens through the Django test client, as the roles that use them: the queue, the
buttons (each one service call, refusals in Chinese and nothing changed), the inspection form
and its refund preview, opening a request for a customer, the order page, and the report."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from aftersales.admin import countdown_text
from aftersales.models import Aftersale, AftersaleStatus
from aftersales.selectors import aftersale_refund_preview, aftersale_report, aftersales_with_due
from aftersales.services import (
    aftersale_approve,
    aftersale_create,
    aftersale_deadline,
    aftersale_receive,
    aftersale_return_shipment,
    aftersales_run_clock,
)
from console.charts import ECHARTS_JS
from fulfillment.services import shipment_deliver
from payments.models import Refund
from tests.conftest import chart_options, force_login_verified, script_sources

from .conftest import SYSTEM, delivered_order, pay_back

pytestmark = pytest.mark.django_db
A = AftersaleStatus
QUEUE = "/admin/aftersales/aftersale/"


def page(aftersale: Aftersale, view: str = "change") -> str:
    return f"{QUEUE}{aftersale.pk}/{view}/"


def request_for(order, *, sku, quantity=1, type="return_refund", reason="quality_issue", **kw) -> Aftersale:
    return aftersale_create(
        order=order, actor=SYSTEM, type=type, reason=reason, lines=[{"sku": sku, "quantity": quantity}], **kw
    )


def shipped_back(aftersale: Aftersale, kefu, tracking_no: str) -> Aftersale:
    aftersale_approve(aftersale=aftersale, actor=kefu)
    return aftersale_return_shipment(aftersale=aftersale, actor=SYSTEM, carrier="yuantong", tracking_no=tracking_no)


@pytest.fixture
def shirt(hangzhou, stocked):
    return stocked({hangzhou: 100}, code="SHIRT", price="70.00")


def logged_in(client, user):
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- the queue --------------------------------------------------------------------------------------


def test_countdown_text():
    now = timezone.now()
    assert countdown_text(now + timedelta(hours=5, minutes=20), now) == "剩 5 小时"
    assert countdown_text(now - timedelta(hours=2, minutes=5), now) == "已超时 2 小时"
    assert countdown_text(now + timedelta(days=3, hours=2), now) == "剩 3 天 2 小时"
    assert countdown_text(now + timedelta(minutes=40), now) == "剩 40 分钟"


def test_the_queue_lists_soonest_deadline_first_with_a_countdown(
    client, shirt, staff, kefu, django_assert_max_num_queries
):
    now = timezone.now()
    later = request_for(delivered_order([(shirt, 1)]), sku="SHIRT")  # due in 48 h
    overdue = request_for(delivered_order([(shirt, 1)]), sku="SHIRT")
    Aftersale.objects.filter(pk=overdue.pk).update(deadline=now - timedelta(hours=2, minutes=10))
    # A return that reached the warehouse 9 days ago: due in about a day (delivery + 10 days).
    returned = shipped_back(request_for(delivered_order([(shirt, 1)]), sku="SHIRT"), kefu, "YT1000000000001")
    shipment_deliver(shipment=returned.return_shipment, actor=SYSTEM, at=now - timedelta(days=9))
    returned.refresh_from_db()
    done = request_for(delivered_order([(shirt, 1)]), sku="SHIRT", type="refund_only", reason="missing_item")
    Aftersale.objects.filter(pk=done.pk).update(deadline=None, status=A.COMPLETED)
    for _ in range(5):  # more rows must not mean more queries
        request_for(delivered_order([(shirt, 1)]), sku="SHIRT")

    client = logged_in(client, staff("客服"))
    with django_assert_max_num_queries(12):
        response = client.get(QUEUE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "代顾客发起售后" in html and "/admin/aftersales/report/" in html
    positions = [html.index(a.aftersale_no) for a in (overdue, returned, later, done)]
    assert positions == sorted(positions)
    assert "已超时 2 小时" in html
    assert "剩 47 小时" in html
    assert "剩 23 小时" in html or "剩 24 小时" in html
    assert "color:#c62828" in html  # the overdue one is red
    due = aftersales_with_due(Aftersale.objects.filter(pk=returned.pk)).get().due
    assert due == aftersale_deadline(Aftersale.objects.select_related("return_shipment").get(pk=returned.pk))


def test_the_queue_filters_and_searches(client, shirt, staff):
    order = delivered_order([(shirt, 1)])
    wanted = request_for(order, sku="SHIRT", reason="damaged_in_transit")
    other = request_for(delivered_order([(shirt, 1)]), sku="SHIRT", reason="size_unfit")
    client = logged_in(client, staff("仓储"))
    html = client.get(QUEUE, {"responsibility__exact": "carrier"}).content.decode()
    assert wanted.aftersale_no in html and other.aftersale_no not in html
    html = client.get(QUEUE, {"q": order.order_no}).content.decode()
    assert wanted.aftersale_no in html and other.aftersale_no not in html
    html = client.get(QUEUE, {"reason__exact": "size_unfit", "escalated__exact": "0"}).content.decode()
    assert other.aftersale_no in html and wanted.aftersale_no not in html


# --- one request: 同意 / 拒绝 -------------------------------------------------------------------------


def test_the_page_shows_what_is_needed_to_decide(client, shirt, staff):
    order = delivered_order([(shirt, 2)])
    aftersale = request_for(order, sku="SHIRT", quantity=2, images=["https://img.example/1.jpg"], description="开线")
    html = logged_in(client, staff("客服")).get(page(aftersale)).content.decode()
    for text in (
        order.order_no,
        "138****8000",
        "SHIRT",
        "140.00",  # the refund preview for both units
        "https://img.example/1.jpg",
        "开线",
        "查看订单时间线",
        'id="as-approve"',
        "同时退运费",  # seller fault: shipping may go back
    ):
        assert text in html, text
    assert "13800138000" not in html
    assert 'id="as-receive"' not in html  # nothing to receive yet


def test_customer_service_approves_with_the_shipping_fee(client, shirt, staff):
    order = delivered_order([(shirt, 1)])
    aftersale = request_for(order, sku="SHIRT", type="refund_only", reason="missing_item")
    client = logged_in(client, staff("客服"))
    response = client.post(page(aftersale, "approve"), {"refund_shipping": "on"}, follow=True)
    aftersale.refresh_from_db()
    assert aftersale.status == A.REFUNDING
    assert aftersale.refund_shipping is True
    assert aftersale.refund_amount == Decimal("70.00") + order.shipping_fee
    assert any("已同意" in m and "待财务审批" in m for m in messages_of(response))
    assert Refund.objects.get(out_refund_no=aftersale.out_refund_no).amount == aftersale.refund_amount
    assert aftersale.order.events.filter(type="aftersale_approved", actor_label=aftersale.handled_by.username).exists()


def test_a_buyer_fault_request_offers_no_shipping_refund(client, shirt, staff):
    aftersale = request_for(delivered_order([(shirt, 1)]), sku="SHIRT", reason="size_unfit")
    client = logged_in(client, staff("客服"))
    assert "同时退运费" not in client.get(page(aftersale)).content.decode()
    response = client.post(page(aftersale, "approve"), {"refund_shipping": "on"}, follow=True)
    assert any("买家责任的售后不退运费" in m for m in messages_of(response))
    aftersale.refresh_from_db()
    assert aftersale.status == A.REQUESTED


def test_customer_service_rejects_with_a_reason_and_an_empty_reason_is_refused(client, shirt, staff):
    aftersale = request_for(delivered_order([(shirt, 1)]), sku="SHIRT", reason="changed_mind")
    client = logged_in(client, staff("客服"))
    response = client.post(page(aftersale, "reject"), {"reason": "  "}, follow=True)
    assert any("请填写拒绝原因" in m for m in messages_of(response))
    aftersale.refresh_from_db()
    assert aftersale.status == A.REQUESTED
    client.post(page(aftersale, "reject"), {"reason": "商品已使用，不支持退货"})
    aftersale.refresh_from_db()
    assert aftersale.status == A.REJECTED and aftersale.reject_reason == "商品已使用，不支持退货"


def test_a_warehouse_clerk_may_not_approve(client, shirt, staff):
    aftersale = request_for(delivered_order([(shirt, 1)]), sku="SHIRT")
    client = logged_in(client, staff("仓储"))
    assert 'id="as-approve"' not in client.get(page(aftersale)).content.decode()
    response = client.post(page(aftersale, "approve"), follow=True)
    assert response.status_code == 200
    assert any("您没有执行此操作的权限" in m and "同意" in m for m in messages_of(response))
    aftersale.refresh_from_db()
    assert aftersale.status == A.REQUESTED and aftersale.handled_by is None
    assert not aftersale.order.events.filter(type="aftersale_approved").exists()


def test_approval_above_the_limit_needs_a_supervisor(client, shirt, staff, settings):
    settings.OMS_AFTERSALE_APPROVAL_LIMIT = Decimal("50.00")
    aftersale = request_for(delivered_order([(shirt, 1)]), sku="SHIRT")
    kefu_client = logged_in(client, staff("客服"))
    assert "需主管同意" in kefu_client.get(page(aftersale)).content.decode()
    response = kefu_client.post(page(aftersale, "approve"), follow=True)
    assert any("超过限额" in m for m in messages_of(response))
    aftersale.refresh_from_db()
    assert aftersale.status == A.REQUESTED
    boss = staff("主管")
    force_login_verified(client, boss)
    client.post(page(aftersale, "approve"))
    aftersale.refresh_from_db()
    assert aftersale.status == A.AWAITING_RETURN and aftersale.handled_by == boss


# --- 收货验收 ---------------------------------------------------------------------------------------


def inspection(aftersale: Aftersale, **per_line) -> dict[str, str]:
    data = {}
    for line in aftersale.lines.all():
        received, accepted, disposition = per_line[line.order_line.sku_code]
        data |= {
            f"received_{line.pk}": str(received),
            f"accepted_{line.pk}": str(accepted),
            f"disposition_{line.pk}": disposition,
            f"grade_{line.pk}": "九成新",
            f"photos_{line.pk}": "https://img.example/a.jpg\nhttps://img.example/b.jpg",
        }
    return data


def test_the_warehouse_previews_then_confirms_the_inspection(client, hangzhou, stocked, staff, kefu, caiwu):
    mug = stocked({hangzhou: 10}, code="MUG", price="30.00")
    shirt = stocked({hangzhou: 10}, code="SHIRT", price="33.33")
    order = delivered_order([(shirt, 3), (mug, 2)])
    aftersale = aftersale_create(
        order=order,
        actor=SYSTEM,
        type="return_refund",
        reason="not_as_described",
        lines=[{"sku": "SHIRT", "quantity": 3}, {"sku": "MUG", "quantity": 2}],
    )
    shipped_back(aftersale, kefu, "YT1000000000002")
    client = logged_in(client, staff("仓储"))
    assert 'id="as-receive"' in client.get(page(aftersale)).content.decode()
    form = client.get(page(aftersale, "receive"))
    assert form.status_code == 200 and "买家垫付的退货运费" in form.content.decode()  # seller fault

    data = inspection(aftersale, SHIRT=(3, 2, "restock"), MUG=(2, 1, "defective")) | {"return_freight": "20.00"}
    preview = client.post(page(aftersale, "receive"), data | {"_preview": "1"})
    html = preview.content.decode()
    expected = Decimal("66.66") + Decimal("30.00") + Decimal("12.00")  # 2 shirts + 1 mug + freight capped at 12
    assert preview.context["preview"].total == expected
    assert f'id="preview-total">{expected}<' in html and 'id="as-confirm"' in html
    aftersale.refresh_from_db()
    assert aftersale.status == A.RETURN_SHIPPED  # a preview changes nothing

    response = client.post(page(aftersale, "receive"), data | {"_confirm": "1"}, follow=True)
    aftersale.refresh_from_db()
    assert aftersale.status == A.REFUNDING
    assert aftersale.refund_amount == expected
    assert any("已验收" in m and str(expected) in m for m in messages_of(response))
    line = aftersale.lines.get(order_line__sku_code="SHIRT")
    assert (line.quantity_received, line.quantity_accepted, line.grade) == (3, 2, "九成新")
    assert line.photos == ["https://img.example/a.jpg", "https://img.example/b.jpg"]
    pay_back(aftersale.out_refund_no, caiwu)
    aftersales_run_clock()
    aftersale.refresh_from_db()
    assert aftersale.status == A.COMPLETED and aftersale.refunded_amount == expected


def test_accepting_more_than_received_is_refused_by_the_form(client, shirt, staff, kefu):
    aftersale = shipped_back(
        request_for(delivered_order([(shirt, 2)]), sku="SHIRT", quantity=2), kefu, "YT1000000000003"
    )
    client = logged_in(client, staff("仓储"))
    response = client.post(
        page(aftersale, "receive"), inspection(aftersale, SHIRT=(1, 2, "restock")) | {"_confirm": "1"}
    )
    assert "验收通过数量不能超过收到数量" in response.content.decode()
    aftersale.refresh_from_db()
    assert aftersale.status == A.RETURN_SHIPPED


def test_customer_service_may_not_receive(client, shirt, staff, kefu):
    aftersale = shipped_back(request_for(delivered_order([(shirt, 1)]), sku="SHIRT"), kefu, "YT1000000000004")
    client = logged_in(client, staff("客服"))
    assert 'id="as-receive"' not in client.get(page(aftersale)).content.decode()
    response = client.post(
        page(aftersale, "receive"), inspection(aftersale, SHIRT=(1, 1, "restock")) | {"_confirm": "1"}
    )
    assert any("您没有执行此操作的权限" in m for m in messages_of(response))
    aftersale.refresh_from_db()
    assert aftersale.status == A.RETURN_SHIPPED
    assert aftersale.lines.get().quantity_received is None


def test_the_preview_is_what_the_service_refunds(shirt, kefu, cangchu, settings):
    order = delivered_order([(shirt, 3)])
    aftersale = shipped_back(request_for(order, sku="SHIRT", quantity=3), kefu, "YT1000000000005")
    line = aftersale.lines.get()
    preview = aftersale_refund_preview(aftersale=aftersale, accepted={line.pk: 2}, return_freight=Decimal("8"))
    done = aftersale_receive(
        aftersale=aftersale,
        actor=cangchu,
        inspections=[{"sku": "SHIRT", "quantity_received": 3, "quantity_accepted": 2, "disposition": "scrap"}],
        return_freight=Decimal("8"),
    )
    assert preview.total == done.refund_amount == Decimal("148.00")


# --- opening a request for a customer, and the order page ---------------------------------------------


def test_customer_service_opens_a_compensation_from_the_order(client, shirt, staff):
    order = delivered_order([(shirt, 2)])
    client = logged_in(client, staff("客服"))
    order_page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert f"/admin/aftersales/aftersale/add/?order={order.order_no}" in order_page
    form = client.get(QUEUE + "add/", {"order": order.order_no})
    assert form.status_code == 200 and "补差金额" in form.content.decode()
    line = order.lines.get()
    response = client.post(
        QUEUE + "add/",
        {
            "order_no": order.order_no,
            "type": "compensation",
            "reason": "not_as_described",
            f"qty_{line.pk}": "1",
            "compensation_amount": "15.00",
            "description": "保价补差",
        },
        follow=True,
    )
    aftersale = Aftersale.objects.get(order=order)
    assert aftersale.type == "compensation" and aftersale.refund_amount == Decimal("15.00")
    assert aftersale.opened_by == response.context["user"].username
    assert any("已为顾客发起售后" in m for m in messages_of(response))
    order_page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert aftersale.aftersale_no in order_page and "补差" in order_page and "待处理" in order_page


def test_opening_is_refused_in_chinese_when_the_service_says_no(client, shirt, staff):
    order = delivered_order([(shirt, 1)])
    line = order.lines.get()
    client = logged_in(client, staff("客服"))
    body = {"order_no": order.order_no, "type": "return_refund", "reason": "quality_issue", f"qty_{line.pk}": "1"}
    client.post(QUEUE + "add/", body)
    response = client.post(QUEUE + "add/", body, follow=True)
    assert any("已有进行中的售后申请" in m for m in messages_of(response))
    assert Aftersale.objects.filter(order=order).count() == 1


def test_only_staff_with_open_aftersale_may_open(client, shirt, staff):
    order = delivered_order([(shirt, 1)])
    client = logged_in(client, staff("仓储"))
    assert client.get(QUEUE + "add/", {"order": order.order_no}).status_code == 403
    assert "代顾客发起售后" not in client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()


def test_nothing_is_edited_or_deleted_by_hand(client, shirt, staff):
    aftersale = request_for(delivered_order([(shirt, 1)]), sku="SHIRT")
    force_login_verified(client, staff("主管"))
    assert client.post(page(aftersale, "delete")).status_code == 403
    html = client.get(page(aftersale)).content.decode()
    assert 'name="_save"' not in html


# --- the report ---------------------------------------------------------------------------------------


@pytest.fixture
def report_data(hangzhou, stocked, kefu, cangchu, caiwu):
    """Two SKUs sold (10 shirts, 4 mugs); three requests: a quality return of 2 shirts, completed
    (140.00 back); a carrier-damaged mug, refund only, waiting for finance; a size return, rejected."""
    shirt = stocked({hangzhou: 50}, code="SHIRT", price="70.00")
    mug = stocked({hangzhou: 50}, code="MUG", price="30.00")
    first = delivered_order([(shirt, 5), (mug, 4)])
    second = delivered_order([(shirt, 5)])
    returned = shipped_back(request_for(first, sku="SHIRT", quantity=2), kefu, "YT1000000000009")
    returned = aftersale_receive(
        aftersale=returned,
        actor=cangchu,
        inspections=[{"sku": "SHIRT", "quantity_received": 2, "quantity_accepted": 2, "disposition": "restock"}],
    )
    pay_back(returned.out_refund_no, caiwu)
    aftersales_run_clock()
    damaged = request_for(first, sku="MUG", type="refund_only", reason="damaged_in_transit")
    aftersale_approve(aftersale=damaged, actor=kefu)
    rejected = request_for(second, sku="SHIRT", reason="size_unfit")
    Aftersale.objects.filter(pk=rejected.pk).update(status=A.REJECTED, escalated=True)
    return {"shirt": shirt, "mug": mug}


def test_the_report_numbers(report_data):
    today = timezone.localdate()
    report = aftersale_report(start=today - timedelta(days=1), end=today)
    assert (report.requests, report.units_requested, report.units_sold) == (3, 4, 14)
    by_sku = {row.key: row for row in report.by_sku}
    assert (by_sku["SHIRT"].units, by_sku["SHIRT"].sold, by_sku["SHIRT"].rate) == (3, 10, Decimal("30.0"))
    assert (by_sku["MUG"].units, by_sku["MUG"].sold, by_sku["MUG"].rate) == (1, 4, Decimal("25.0"))
    reasons = {row.key: row for row in report.by_reason}
    assert (reasons["quality_issue"].requests, reasons["quality_issue"].refunded) == (1, Decimal("140.00"))
    assert reasons["size_unfit"].units == 1 and reasons["wrong_item"].requests == 0
    sides = {row.key: row for row in report.by_responsibility}
    assert (sides["seller"].units, sides["carrier"].units, sides["buyer"].units) == (2, 1, 1)
    assert report.refunded == Decimal("140.00") and report.refunding == Decimal("30.00")
    assert report.resolved == 1 and report.resolve_median_hours is not None
    assert report.escalated == 1
    (carrier,) = report.damage_by_carrier
    assert (carrier.carrier, carrier.damaged, carrier.parcels) == ("shunfeng", 1, 2)
    empty = aftersale_report(start=today - timedelta(days=40), end=today - timedelta(days=35))
    assert empty.requests == 0 and empty.rate is None and empty.damage_by_carrier == []


def test_the_report_renders_with_charts(client, report_data, staff, django_assert_max_num_queries):
    client = logged_in(client, staff("客服"))
    with django_assert_max_num_queries(25):
        response = client.get("/admin/aftersales/report/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "售后报表" in html and 'id="chart-ar-chart-sku"' in html
    assert 'id="ar-requests">3<' in html and 'id="ar-refunded">140.00<' in html
    assert "顺丰速运" in html and "物流破损" in html


def test_the_report_charts_are_echarts_from_our_static_files(client, report_data, staff):
    html = logged_in(client, staff("客服")).get("/admin/aftersales/report/").content.decode()
    assert script_sources(html).count(f"/static/{ECHARTS_JS}") == 1
    assert all(src.startswith("/static/") for src in script_sources(html))  # no other host

    def bars(key: str) -> dict:
        options = chart_options(html, key)
        return dict(zip(options["yAxis"]["data"], options["series"][0]["data"], strict=True))

    assert bars("ar-chart-sku") == {"SHIRT": 30.0, "MUG": 25.0}
    assert bars("ar-chart-reason") == {"质量问题": 14.3, "物流破损": 7.1, "尺码不合适": 7.1}
    assert bars("ar-chart-responsibility") == {"商家": 14.3, "快递": 7.1, "买家": 7.1}
    assert bars("ar-chart-refund") == {"退货退款": 140.0, "仅退款": 30.0}
    assert bars("ar-chart-carrier") == {"顺丰速运": 1}
    assert chart_options(html, "ar-chart-sku")["series"][0]["label"]["formatter"] == "{c}%"


def test_the_report_needs_view_aftersale(client, staff):
    assert logged_in(client, staff("运营")).get("/admin/aftersales/report/").status_code == 403
