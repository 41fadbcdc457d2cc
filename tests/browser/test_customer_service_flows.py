"""More 客服 flows clicked through in chromium: cancel an order through its confirmation page,
export the filtered order list to Excel, and resolve a logistics exception from its queue."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from fulfillment.models import LogisticsException
from fulfillment.services import logistics_exception_open, shipment_ship
from orders.models import Order
from tests.fulfillment.conftest import SYSTEM, allocated, order_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_customer_service_cancels_through_the_confirmation_page_and_exports_the_list(
    live_server, staff_login, create_order, page
):
    order = Order.objects.get(order_no=create_order()["order_no"])
    staff_login(page, "客服", "kefu1")

    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    assert page.locator("input[name=_save]").count() == 0  # the page acts only through its buttons
    page.click("button[name=_fsm_transition_to][value=cancel]")
    page.wait_for_selector("#transition-summary")
    assert order.order_no in page.inner_text("h1")
    assert "不涉及退款" in page.inner_text("#transition-effect")
    page.select_option("#id_reason", "out_of_stock")
    page.click("input[type=submit][value='确认取消订单']")
    page.wait_for_selector("text=已取消")
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "out_of_stock")

    page.goto(f"{live_server.url}/admin/orders/order/?status__exact=cancelled")
    page.click("a.export_link")
    page.select_option("#id_format", index=1)  # XLSX
    with page.expect_download() as download:
        page.click("input[type=submit]")
    sheet = load_workbook(io.BytesIO(open(download.value.path(), "rb").read())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "订单号" and [row[0] for row in rows[1:]] == [order.order_no]


def test_customer_service_resolves_a_logistics_exception_from_the_queue(
    live_server,
    staff_login,
    hangzhou,
    stocked,
    page,
):
    order = order_for([(stocked({hangzhou: 5}), 1)])
    (parcel,) = allocated(order)
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    case = logistics_exception_open(
        shipment=parcel, kind="problem", last_event="【杭州】地址不详，联系不上收件人", actor=SYSTEM
    )
    staff_login(page, "客服", "kefu2")

    page.goto(f"{live_server.url}/admin/fulfillment/logisticsexception/")
    page.click(f"a[href$='/{case.pk}/change/']")
    page.select_option("#id_outcome", "contact_customer")
    page.fill("#id_note", "已电话联系，顾客更正门牌号")
    page.click("input[name=_save]")
    page.wait_for_load_state()
    case.refresh_from_db()
    assert case.outcome == LogisticsException.Outcome.CONTACT_CUSTOMER and case.resolved_at is not None
    assert case.resolved_by.username == "kefu2"
