"""The warehouse's day in chromium: pick wave and its printed pick list, 验货 with a scanner
(one wrong item refused), pack, ship with a carrier and a tracking number; 合单 and correcting
a tracking number; batch ship from the carrier's file; the provinces a warehouse covers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fulfillment.models import PickWave, Shipment
from fulfillment.services import order_allocate
from orders.events import Actor
from orders.models import Order
from orders.services import order_pay
from tests.inventory.factories import SkuFactory, WarehouseFactory
from tests.orders.factories import OrderFactory, OrderInputFactory, StorefrontFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path("/tmp")


def allocated_order(lines, mobile: str) -> tuple[Order, Shipment]:
    payload = OrderInputFactory(
        lines=[{"sku": sku.code, "quantity": qty} for sku, qty in lines],
        shipping_address={
            "receiver": "张小姐",
            "phone": mobile,
            "province": "浙江省",
            "city": "杭州市",
            "district": "西湖区",
            "detail": "文三路100号",
            "postcode": "310000",
        },
        customer={"name": "张小姐", "mobile": mobile, "email": "", "member_id": ""},
    )
    order = OrderFactory(storefront=StorefrontFactory(), payload=payload)
    order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("test"))
    (shipment,) = order_allocate(order=order)
    return order, shipment


def pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf))


def test_a_picker_prints_a_pick_list_scans_packs_and_ships(live_server, staff_login, page):
    warehouse = WarehouseFactory(code="HZ01", name="杭州主仓", provinces=["浙江省"], priority=10)
    shirt = SkuFactory(
        code="TSHIRT-L-BLK", name="纯棉T恤", spec="L码 黑色", bin_location="A-03-2", barcode="6901234567892",
        stock=50, stock__warehouse=warehouse,
    )  # fmt: skip
    mug = SkuFactory(
        code="MUG-WHT", name="白色马克杯", spec="350ml", bin_location="B-01-1", barcode="6909876543210",
        stock=50, stock__warehouse=warehouse,
    )  # fmt: skip
    order, parcel = allocated_order([(shirt, 2), (mug, 1)], mobile="13800138000")
    other_order, other = allocated_order([(shirt, 1)], mobile="13900139000")

    staff_login(page, "仓储", "cangchu-fa")
    base = live_server.url + "/admin/fulfillment/shipment/"

    # 1. the parcel list: select both pending parcels, generate a pick wave
    page.goto(base + "?status__exact=pending")
    assert "TSHIRT-L-BLK×2" in page.content() and order.order_no in page.content()
    page.screenshot(path=str(SHOTS / "fa-shipments.png"), full_page=True)
    for shipment in (parcel, other):
        page.check(f"input[name=_selected_action][value='{shipment.pk}']")
    page.select_option("select[name=action]", "start_pick_wave")
    page.click("button[name=index]")
    page.wait_for_url(re.compile(r"/pick-list/$"))

    # 2. the pick list: bins in walking order, the SKU, whose units they are
    wave = PickWave.objects.get()
    content = page.content()
    assert wave.wave_no in content and "杭州主仓" in content
    for text in ("A-03-2", "B-01-1", "TSHIRT-L-BLK", "6901234567892", order.order_no, other_order.order_no):
        assert text in content
    assert content.index("A-03-2") < content.index("B-01-1")
    assert page.locator("#print-button").is_visible()
    page.screenshot(path=str(SHOTS / "fa-picklist-screen.png"), full_page=True)
    page.emulate_media(media="print")
    assert not page.locator("#print-button").is_visible()  # the toolbar is not printed
    page.screenshot(path=str(SHOTS / "fa-picklist-print.png"), full_page=True)
    pdf = page.pdf(format="A4", print_background=True)
    (SHOTS / "fa-picklist.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF") and pdf_pages(pdf) >= 1
    page.emulate_media(media="screen")

    # 3. 验货: a wrong item is refused, then each unit scanned (barcode or SKU code) + Enter
    page.goto(f"{base}{parcel.pk}/change/")
    page.click("#scan-link")
    page.fill("#scan-code", "6900000000000")
    page.press("#scan-code", "Enter")
    page.wait_for_selector("text=扫描的商品「6900000000000」不在此包裹中，请勿装入")
    for code in ("6901234567892", "6901234567892", "MUG-WHT"):
        page.fill("#scan-code", code)
        page.press("#scan-code", "Enter")
        page.wait_for_selector("text=✔")
    page.fill("#scan-code", "MUG-WHT")  # one more mug than the parcel holds
    page.press("#scan-code", "Enter")
    page.wait_for_selector("text=多出的一件请勿装入")
    assert "3</b> / 3" in page.content()
    page.screenshot(path=str(SHOTS / "fa-scan.png"), full_page=True)

    # 4. pack, then ship with a carrier from the list and its tracking number
    page.click("#pack-submit")
    page.wait_for_selector("text=已打包，可以发货")
    page.click("#ship-link")
    page.select_option("#id_carrier", "shunfeng")
    page.fill("#id_tracking_no", "SF1234567890")
    page.screenshot(path=str(SHOTS / "fa-ship-form.png"), full_page=True)
    page.click("#action-submit")
    page.wait_for_selector("text=已发货：顺丰速运 SF1234567890")
    parcel.refresh_from_db()
    assert (parcel.status, parcel.tracking_no) == ("shipped", "SF1234567890")
    assert page.locator("#correct-link").is_visible()  # until the carrier's first scan
    page.screenshot(path=str(SHOTS / "fa-shipment.png"), full_page=True)

    # 5. the order page shows the parcel and the order as shipped
    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    content = page.content()
    assert parcel.shipment_no in content and "SF1234567890" in content and "已发货" in content
    assert Order.objects.get(pk=order.pk).status == "shipped"
    page.screenshot(path=str(SHOTS / "fa-order.png"), full_page=True)


def test_customer_service_merges_two_parcels_and_the_warehouse_corrects_a_tracking_number(
    live_server, staff_login, page, browser, settings
):
    """合单 from the parcel list by 客服; then 仓储 ships the merged parcel with a mistyped
    number and corrects it on its page before the carrier's first scan."""
    settings.OMS_AUTO_MERGE = False  # two parcels of one customer, as when the first was already on its way
    warehouse = WarehouseFactory(code="HZ01", name="杭州主仓", provinces=["浙江省"], priority=10)
    shirt = SkuFactory(code="TSHIRT-L-BLK", name="纯棉T恤", spec="L码 黑色", stock=50, stock__warehouse=warehouse)
    mug = SkuFactory(code="MUG-WHT", name="白色马克杯", spec="350ml", stock=50, stock__warehouse=warehouse)
    first_order, first = allocated_order([(shirt, 1)], mobile="13800138000")
    second_order, second = allocated_order([(mug, 2)], mobile="13800138000")
    base = live_server.url + "/admin/fulfillment/shipment/"

    # 1. 客服: both pending parcels selected, 合并包裹 from the action menu
    staff_login(page, "客服", "kefu-merge")
    page.goto(base + "?status__exact=pending")
    for shipment in (first, second):
        page.check(f"input[name=_selected_action][value='{shipment.pk}']")
    page.select_option("select[name=action]", "merge_selected")
    page.click("button[name=index]")
    page.wait_for_selector(f"text=已合并为包裹 {first.shipment_no}")
    page.screenshot(path=str(SHOTS / "cs-merged.png"), full_page=True)
    assert Shipment.objects.get(pk=second.pk).merged_into_id == first.pk
    assert sorted(first.lines.values_list("order_line__sku_code", flat=True)) == ["MUG-WHT", "TSHIRT-L-BLK"]

    # 2. 仓储, in another browser session: ship it with a mistyped number, then correct it
    warehouse_page = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900}).new_page()
    warehouse_page.set_default_timeout(15_000)
    staff_login(warehouse_page, "仓储", "cangchu-fix")
    warehouse_page.goto(f"{base}{first.pk}/change/")
    warehouse_page.click("#ship-link")
    warehouse_page.select_option("#id_carrier", "shunfeng")
    warehouse_page.fill("#id_tracking_no", "SF1234567809")
    warehouse_page.click("#action-submit")
    warehouse_page.wait_for_selector("text=已发货：顺丰速运 SF1234567809")
    warehouse_page.click("#correct-link")
    warehouse_page.fill("#id_tracking_no", "SF1234567890")
    warehouse_page.click("#action-submit")
    warehouse_page.wait_for_selector("text=运单号已更正")
    warehouse_page.screenshot(path=str(SHOTS / "fa-corrected.png"), full_page=True)
    assert Shipment.objects.get(pk=first.pk).tracking_no == "SF1234567890"

    # 3. both orders' timelines name the old and the new number
    for order in (first_order, second_order):
        warehouse_page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
        content = warehouse_page.content()
        assert "SF1234567809" in content and "SF1234567890" in content, order.order_no
    warehouse_page.context.close()


def test_the_warehouse_ships_a_day_of_parcels_by_uploading_the_carrier_file(live_server, staff_login, page, tmp_path):
    """批量导入发货: the list's link, a CSV with Chinese headers as the carrier's system exports it,
    the per-row results with the failed row first; then the same file again changes nothing."""
    warehouse = WarehouseFactory(code="HZ01", name="杭州主仓", provinces=["浙江省"], priority=10)
    shirt = SkuFactory(code="TSHIRT-L-BLK", name="纯棉T恤", spec="L码 黑色", stock=50, stock__warehouse=warehouse)
    parcels = [allocated_order([(shirt, 1)], mobile=f"1380013800{n}")[1] for n in range(3)]
    upload = tmp_path / "顺丰发货.csv"
    upload.write_text(
        "包裹号,承运商,运单号\n"
        f"{parcels[0].shipment_no},shunfeng,SF1000000001\n"
        f"{parcels[1].shipment_no},shunfeng,1\n"  # a mistyped tracking number
        f"{parcels[2].shipment_no},shunfeng,SF1000000003\n",
        encoding="utf-8-sig",
    )
    staff_login(page, "仓储", "cangchu-import")

    page.goto(live_server.url + "/admin/fulfillment/shipment/")
    page.click("text=批量导入发货")
    page.set_input_files("#shipment-import-form input[type=file]", str(upload))
    page.click("#shipment-import-form input[type=submit]")
    page.wait_for_selector("#import-summary")
    summary = page.inner_text("#import-summary")
    assert "已发货 2 行" in summary and "失败 1 行" in summary
    failed = page.inner_text("#import-failed")
    assert parcels[1].shipment_no in failed and parcels[0].shipment_no not in failed
    page.screenshot(path=str(SHOTS / "fa-import.png"), full_page=True)
    statuses = dict(Shipment.objects.values_list("shipment_no", "status"))
    assert [statuses[p.shipment_no] for p in parcels] == ["shipped", "pending", "shipped"]

    page.set_input_files("#shipment-import-form input[type=file]", str(upload))  # the same file again
    page.click("#shipment-import-form input[type=submit]")
    page.wait_for_selector("#import-summary")
    again = page.inner_text("#import-summary")
    assert "已发货 0 行" in again and "无变化 2 行" in again
    assert Shipment.objects.filter(status="shipped").count() == 2


def test_operations_sets_the_provinces_a_warehouse_covers(live_server, staff_login, page):
    """运营 types the covered provinces as one line, short names and mixed separators allowed;
    a name that is no province is refused and nothing changes."""
    warehouse = WarehouseFactory(code="HZ01", name="杭州主仓", provinces=["浙江省"], priority=10)
    staff_login(page, "运营", "yunying-wh")
    page.goto(f"{live_server.url}/admin/inventory/warehouse/{warehouse.pk}/change/")
    assert page.input_value("#id_provinces") == "浙江省"

    page.fill("#id_provinces", "浙江, 上海市，江苏")
    page.fill("#id_priority", "5")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert "浙江省、上海市、江苏省" in page.inner_text("#result_list")
    warehouse.refresh_from_db()
    assert (warehouse.provinces, warehouse.priority) == (["浙江省", "上海市", "江苏省"], 5)

    page.goto(f"{live_server.url}/admin/inventory/warehouse/{warehouse.pk}/change/")
    page.fill("#id_provinces", "浙江、火星")
    page.click("input[name=_save]")
    page.wait_for_selector("text=不认识的省份：火星")
    page.screenshot(path=str(SHOTS / "ops-warehouse-provinces.png"), full_page=True)
    warehouse.refresh_from_db()
    assert warehouse.provinces == ["浙江省", "上海市", "江苏省"]
