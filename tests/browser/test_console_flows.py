"""Console flows (issue 11) clicked through in chromium: 客服 finds an order by phone, writes a
memo, holds it and releases it; 客服 corrects an address and phone; 主管 approves a manual
order that 客服 entered."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.events import Actor
from orders.models import Order, OrderEvent
from orders.services import order_pay

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_customer_service_finds_an_order_by_phone_writes_a_memo_holds_and_releases_it(
    live_server, staff_login, create_order, page
):
    create_order()  # another order of the same customer is listed too
    order = Order.objects.get(order_no=create_order(customer={"name": "李先生", "mobile": "13712345678"})["order_no"])
    order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("test"))
    staff_login(page, "客服", "kefu1")

    page.goto(f"{live_server.url}/admin/orders/order/")
    page.fill("#searchbar", "13712345678")
    page.press("#searchbar", "Enter")
    page.wait_for_selector(f"text={order.order_no}")
    assert page.locator("input.action-select").count() == 1
    page.click(f"text={order.order_no}")

    page.fill("#id_memo_text", "顾客来电：想换成白色，先别发")
    page.click("#memo-add")
    page.wait_for_selector("text=备注已保存")
    page.fill("#id_hold_reason", "顾客考虑换颜色")
    page.click("#hold-order")
    page.wait_for_selector("text=订单已挂起，仓库不会拣货，直到释放")
    assert page.locator("#hold-state").inner_text().endswith("顾客考虑换颜色")
    page.screenshot(path="/tmp/console-order-held.png", full_page=False)
    order.refresh_from_db()
    assert order.held_at is not None and order.memos.get().text == "顾客来电：想换成白色，先别发"

    page.goto(f"{live_server.url}/admin/orders/order/?held=yes")  # the 挂起 queue
    page.click(f"text={order.order_no}")
    page.click("#release-order")
    page.wait_for_selector("text=订单已释放，将进入分仓")
    order.refresh_from_db()
    assert order.held_at is None
    assert list(order.events.filter(type__in=["memo", "held", "released"]).values_list("type", flat=True)) == [
        OrderEvent.Type.MEMO,
        OrderEvent.Type.HELD,
        OrderEvent.Type.RELEASED,
    ]
    page.goto(f"{live_server.url}/admin/orders/order/?q=换成白色")  # memos are searchable
    page.wait_for_selector(f"text={order.order_no}")


def test_customer_service_corrects_an_address_and_phone_from_the_order_page(
    live_server, staff_login, create_order, page
):
    order = Order.objects.get(order_no=create_order()["order_no"])
    order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("test"))
    staff_login(page, "客服", "kefu-address")

    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    page.click("#correct-address")
    assert order.order_no in page.content() and page.input_value("#id_phone") == ""  # nothing unmasked prefilled
    page.click("#console-submit")  # nothing filled in: refused, nothing changes
    page.wait_for_selector("text=请至少修改一项")
    page.fill("#id_phone", "13911112222")
    page.fill("#id_detail", "文一西路998号")
    page.screenshot(path="/tmp/console-address-form.png", full_page=True)
    page.click("#console-submit")
    page.wait_for_selector("text=收货地址已修改，原地址和新地址已记入时间线")
    order.refresh_from_db()
    assert (order.receiver_phone, order.address_detail, order.city) == ("13911112222", "文一西路998号", "杭州市")
    assert order.events.filter(type=OrderEvent.Type.ADDRESS_CHANGED).count() == 1


def supervisor_login(page, live_server, django_user_model, username: str):
    """主管 log in with a password and a TOTP code (two-factor is required for the role)."""
    password = "Test-pass-2026!"
    user = django_user_model.objects.create_user(username, password=password, is_staff=True)
    user.groups.add(Group.objects.get(name="主管"))
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#id_token")
    page.fill("#id_token", f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return user


def test_a_supervisor_approves_a_manual_order_entered_by_someone_else(
    live_server, staff_login, tshirt, browser, page, django_user_model
):
    clerk = staff_login(page, "客服", "kefu2")
    page.goto(f"{live_server.url}/admin/orders/order/")
    page.click("#manual-order-add")
    page.select_option("#id_payment_method", "bank_transfer")
    for field, value in {
        "customer_name": "王五",
        "customer_mobile": "13900001111",
        "receiver": "王五",
        "receiver_phone": "13900001111",
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
        "detail": "文三路100号",
    }.items():
        page.fill(f"#id_{field}", value)
    page.select_option("#id_lines-0-sku", str(tshirt.pk))
    page.fill("#id_lines-0-quantity", "2")
    page.screenshot(path="/tmp/console-manual-form.png", full_page=True)
    page.click("#console-submit")
    page.wait_for_selector("text=已录入订单，等待另一位员工复核")
    order = Order.objects.get(storefront__code="manual")
    assert order.created_by == clerk and order.review_flags == ["manual"]
    assert page.locator("#review-approve").count() == 0  # 客服 cannot review it

    boss_context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    boss = boss_context.new_page()
    boss.set_default_timeout(15_000)
    supervisor = supervisor_login(boss, live_server, django_user_model, "zhuguan1")
    boss.goto(f"{live_server.url}/admin/orders/order/?review=waiting")  # the 待人工审核 queue
    boss.click(f"text={order.order_no}")
    boss.wait_for_selector("text=手动录入待复核")
    boss.fill("#id_review_note", "已电话核对数量和地址")
    boss.screenshot(path="/tmp/console-manual-review.png")
    boss.click("#review-approve")
    boss.wait_for_selector("text=手动录入订单已复核")
    boss_context.close()

    order.refresh_from_db()
    assert order.review_flags == [] and order.status == "pending_payment"  # waits for the bank transfer
    cleared = order.events.get(type=OrderEvent.Type.REVIEW_CLEARED)
    assert cleared.actor_user == supervisor and cleared.data["note"] == "已电话核对数量和地址"
