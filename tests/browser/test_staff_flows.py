"""Staff flows clicked through the way a person would, in chromium."""

from __future__ import annotations

import pytest

from inventory.models import StockLevel, StockMovement
from orders.models import Order, PiiAccess

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_warehouse_clerk_writes_off_damaged_stock(live_server, staff_login, tshirt, create_order, page):
    create_order(lines=[{"sku": tshirt.code, "quantity": 30}])  # 30 of 100 are reserved
    staff_login(page, "仓储", "cangchu1")
    level = StockLevel.objects.get(sku=tshirt)
    page.goto(f"{live_server.url}/admin/inventory/stocklevel/")
    page.click(f"text={tshirt.code}")
    page.fill("#id_delta", "-75")  # more than is free: refused, nothing changes
    page.select_option("#id_reason", "damaged")
    page.click("input[name=_save]")
    page.wait_for_selector("text=库存调整后在库数量不能小于已预占数量")
    assert StockLevel.objects.get(pk=level.pk).on_hand == 100
    page.fill("#id_delta", "-3")
    page.select_option("#id_reason", "damaged")
    page.fill("#id_note", "外箱破损")
    page.click("input[name=_continue]")
    page.wait_for_selector("text=外箱破损")  # the movement is listed on the row
    assert StockLevel.objects.get(pk=level.pk).on_hand == 97
    assert StockMovement.objects.get(reason="damaged").actor_label == "cangchu1"
    page.screenshot(path="var/browser-stock-adjust.png")


def test_customer_service_reveals_a_customers_number_and_it_is_logged(live_server, staff_login, create_order, page):
    order = Order.objects.get(order_no=create_order()["order_no"])
    user = staff_login(page, "客服", "kefu1")
    page.goto(f"{live_server.url}/admin/orders/order/")
    assert "138****8000" in page.content() and "13800138000" not in page.content()
    page.click(f"text={order.order_no}")
    assert "13800138000" not in page.content()
    page.click("#reveal-pii")
    page.wait_for_selector("text=本次查看已记录")
    assert "13800138000" in page.content()
    assert PiiAccess.objects.filter(user=user, order=order).count() == 1
    page.screenshot(path="var/browser-pii-reveal.png")


def test_a_warehouse_clerk_sees_a_chinese_refusal(live_server, staff_login, create_order, page):
    order = Order.objects.get(order_no=create_order()["order_no"])
    staff_login(page, "仓储", "cangchu2")
    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    assert "取消订单" not in page.content()  # not this role's button
    response = page.goto(f"{live_server.url}/admin/payments/payment/")
    assert response.status == 403
    assert "没有权限" in page.content() and "Forbidden" not in page.content()
