"""A return from request to refund, clicked through the admin in chromium the way the people
who do it would: 客服 approves, the customer's parcel comes back, 仓储 inspects it (accepting
fewer units than were sent back), 财务 approves and pays back the refund, and the request ends
已完成 with exactly the accepted units' money returned."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from aftersales.models import Aftersale, AftersaleStatus
from aftersales.services import aftersale_create, aftersale_return_shipment
from aftersales.tasks import run_aftersales_clock
from inventory.models import StockLevel
from payments.models import Refund
from payments.services import refund_execute
from tests.aftersales.conftest import SYSTEM, delivered_order
from tests.inventory.factories import SkuFactory, WarehouseFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
A = AftersaleStatus
SCREENSHOT = "/tmp/aftersale-inspection.png"


@pytest.fixture
def hangzhou(db):
    return WarehouseFactory(code="HZ01", name="杭州主仓", provinces=["浙江省", "上海市"], priority=10)


@pytest.fixture
def new_page(browser):
    """Another person at another desk: a browser context of their own, closed at the end."""
    contexts = []

    def make():
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield make
    for context in contexts:
        context.close()


def finance_login(page, live_server, django_user_model, username: str):
    """财务 must pass two-factor: password, then a TOTP code from an enrolled device."""
    password = "Test-pass-2026!"
    user = django_user_model.objects.create_user(username, password=password, is_staff=True)
    user.groups.add(Group.objects.get(name="财务"))
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/2fa/verify/**")
    page.fill("#id_token", f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}")
    page.click("#content-main input[type=submit][value=验证]")
    page.wait_for_selector("#user-tools")
    return user


def run_refund_action(page, live_server, refund: Refund, action: str) -> None:
    page.goto(f"{live_server.url}/admin/payments/refund/")
    page.check(f"input[name=_selected_action][value='{refund.pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    if action == "approve":  # money leaves: the confirmation page lists it first
        page.click("#confirm-approve")


def test_a_return_from_request_to_refund_in_the_admin(
    live_server, staff_login, new_page, page, hangzhou, django_user_model
):
    shirt = SkuFactory(code="SHIRT-M", price=Decimal("70.00"), stock=10, stock__warehouse=hangzhou)
    order = delivered_order([(shirt, 3)])  # paid by bank transfer, shipped and delivered
    aftersale = aftersale_create(
        order=order,
        actor=SYSTEM,
        type="return_refund",
        reason="quality_issue",
        lines=[{"sku": "SHIRT-M", "quantity": 3}],
        description="三件都有线头",
        images=["https://img.example/complaint.jpg"],
    )
    change_url = f"{live_server.url}/admin/aftersales/aftersale/{aftersale.pk}/change/"

    # 客服 finds it in the queue and approves it.
    staff_login(page, "客服", "kefu-as")
    page.goto(f"{live_server.url}/admin/aftersales/aftersale/")
    assert "剩 47 小时" in page.inner_text("#result_list")
    page.screenshot(path="/tmp/aftersale-queue.png")
    page.click(f"text={aftersale.aftersale_no}")
    assert "210.00" in page.inner_text("#as-lines")  # 3 x 70.00 requested
    page.click("#as-approve")
    page.wait_for_selector("text=已同意")
    assert Aftersale.objects.get(pk=aftersale.pk).status == A.AWAITING_RETURN

    # The customer sends the parcel back (the storefront API's service).
    aftersale_return_shipment(aftersale=aftersale, actor=SYSTEM, carrier="yuantong", tracking_no="YT1234567890999")

    # 仓储 receives 3 and accepts 2 (one is worn: no refund for it), and previews the refund first.
    clerk = new_page()
    staff_login(clerk, "仓储", "cangchu-as")
    clerk.goto(change_url)
    assert "YT1234567890999" in clerk.content()
    clerk.click("#as-receive")
    line = aftersale.lines.get()
    clerk.fill(f"#id_received_{line.pk}", "3")
    clerk.fill(f"#id_accepted_{line.pk}", "2")
    clerk.select_option(f"#id_disposition_{line.pk}", "restock")
    clerk.fill(f"#id_grade_{line.pk}", "九成新")
    clerk.fill(f"#id_photos_{line.pk}", "https://img.example/inspect-1.jpg")
    assert clerk.inner_text("#live-total") == "140.00"
    clerk.click("#as-preview")
    clerk.wait_for_selector("#refund-preview")
    assert clerk.inner_text("#preview-total") == "140.00"
    clerk.screenshot(path=SCREENSHOT, full_page=True)
    assert Aftersale.objects.get(pk=aftersale.pk).status == A.RETURN_SHIPPED  # the preview changed nothing
    clerk.click("#as-confirm")
    clerk.wait_for_selector("text=已验收")
    aftersale.refresh_from_db()
    assert aftersale.status == A.REFUNDING and aftersale.refund_amount == Decimal("140.00")
    assert StockLevel.objects.get(sku=shirt, warehouse=hangzhou).on_hand == 10  # 7 + the 3 restocked
    refund = Refund.objects.get(out_refund_no=aftersale.out_refund_no)
    assert refund.amount == Decimal("140.00")

    # 财务 approves the refund in the refund admin; the request stays 退款中 until the money is back.
    cashier = new_page()
    finance_login(cashier, live_server, django_user_model, "caiwu-as")
    run_refund_action(cashier, live_server, refund, "approve")
    cashier.wait_for_selector("text=已审批 1 笔退款")
    refund.refresh_from_db()
    assert refund.status == Refund.Status.APPROVED
    assert Aftersale.objects.get(pk=aftersale.pk).status == A.REFUNDING
    refund_execute(refund_id=refund.pk)  # the worker's job: a bank transfer goes back by hand
    run_refund_action(cashier, live_server, refund, "mark_paid_by_hand")
    cashier.wait_for_selector("text=已标记 1 笔退款为线下已退")
    run_aftersales_clock()  # the beat task sees the refund succeeded

    aftersale.refresh_from_db()
    assert aftersale.status == A.COMPLETED and aftersale.refunded_amount == Decimal("140.00")
    clerk.goto(change_url)
    assert "已完成" in clerk.inner_text("#as-status")
    clerk.screenshot(path="/tmp/aftersale-completed.png", full_page=True)
    clerk.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    assert aftersale.aftersale_no in clerk.inner_text("#aftersales-group")
    clerk.locator("#aftersales-group").screenshot(path="/tmp/aftersale-order-block.png")
    order.refresh_from_db()
    assert order.refunded_total == Decimal("140.00")

    # The report counts it: 3 units in a request of 3 sold, 140.00 back.
    clerk.goto(f"{live_server.url}/admin/aftersales/report/")
    assert clerk.inner_text("#ar-refunded") == "140.00"
    assert clerk.inner_text("#ar-rate") == "100.0%"
    clerk.screenshot(path="/tmp/aftersale-report.png", full_page=True)


def test_customer_service_opens_a_compensation_for_a_customer_from_the_order_page(
    live_server, staff_login, page, hangzhou
):
    """补差 on the phone: 客服 opens it from the order page for the customer; it waits in the
    queue for approval like any request, and the order page lists it."""
    shirt = SkuFactory(code="SHIRT-M", price=Decimal("70.00"), stock=10, stock__warehouse=hangzhou)
    order = delivered_order([(shirt, 2)])
    line = order.lines.get()
    staff_login(page, "客服", "kefu-compensate")

    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    page.click("#open-aftersale")
    page.wait_for_selector("#open-form")
    assert order.order_no in page.content()
    page.select_option("#id_type", "compensation")
    page.select_option("#id_reason", "not_as_described")
    page.fill(f"input[name=qty_{line.pk}]", "1")
    page.fill("#id_compensation_amount", "15.00")
    page.fill("#id_description", "顾客来电：颜色与图片不符，同意补差 15 元")
    page.screenshot(path="/tmp/aftersale-open-compensation.png", full_page=True)
    page.click("#as-open")
    page.wait_for_selector("text=已为顾客发起售后")

    aftersale = Aftersale.objects.get(order=order)
    assert (aftersale.type, aftersale.status, aftersale.refund_amount) == (
        "compensation",
        A.REQUESTED,
        Decimal("15.00"),
    )
    assert aftersale.opened_by == "kefu-compensate"
    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    assert aftersale.aftersale_no in page.content()
