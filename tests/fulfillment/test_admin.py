"""The warehouse's admin screens, through the Django test client: each button is a service call
as the logged-in user, refused ones say why in Chinese and change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from fulfillment.models import LogisticsException, PickWave, Shipment, ShipmentStatus, TrackingEvent
from fulfillment.services import logistics_exception_open, pick_wave_start, shipment_ship
from inventory.models import Warehouse
from orders.models import Order, OrderStatus
from tests.conftest import force_login_verified

from .conftest import SYSTEM, allocated, order_for

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/fulfillment/shipment/"
# Session, user, two-factor check and idle-session save (5 with the test's savepoints), the
# count, the page of parcels, their lines with orders and SKUs, and the warehouse filter's
# choices: a bound that does not move with the number of parcels on the page.
SHIPMENT_CHANGELIST_MAX_QUERIES = 14


def login(user) -> Client:
    client = Client()
    force_login_verified(client, user)
    return client


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


@pytest.fixture
def shirt(hangzhou, stocked):
    return stocked({hangzhou: 50}, code="TSHIRT-L-BLK", bin_location="A-03-2", barcode="6901234567892")


@pytest.fixture
def mug(hangzhou, stocked):
    return stocked({hangzhou: 50}, code="MUG-WHT", bin_location="B-01-1", barcode="6909876543210")


@pytest.fixture
def parcel(shirt, mug) -> Shipment:
    (shipment,) = allocated(order_for([(shirt, 2), (mug, 1)]))
    return shipment


@pytest.fixture
def clerk(staff):
    return login(staff("仓储", "cangchu"))


def action(client: Client, name: str, shipments, **extra):
    return client.post(
        CHANGELIST,
        {"action": name, "_selected_action": [s.pk for s in shipments], **extra},
        follow=True,
    )


def test_the_parcel_list_shows_what_a_picker_needs(clerk, parcel):
    page = clerk.get(CHANGELIST).content.decode()
    order_no = parcel.lines.first().order.order_no
    for text in (
        parcel.shipment_no,
        order_no,
        "杭州主仓",
        "待拣货",
        "TSHIRT-L-BLK×2",
        "MUG-WHT×1",
        "生成拣货波次并打印拣货单",
    ):
        assert text in page


def test_the_parcel_list_costs_the_same_queries_for_three_or_thirty_parcels(
    clerk, shirt, mug, django_assert_max_num_queries
):
    for n in range(3):
        allocated(order_for([(shirt, 1), (mug, 1)], mobile=f"1390000{n:04d}"))
    with django_assert_max_num_queries(SHIPMENT_CHANGELIST_MAX_QUERIES):
        assert clerk.get(CHANGELIST).status_code == 200
    for n in range(3, 30):
        allocated(order_for([(shirt, 1)], mobile=f"1390000{n:04d}"))
    with django_assert_max_num_queries(SHIPMENT_CHANGELIST_MAX_QUERIES):
        response = clerk.get(CHANGELIST)
    assert response.content.decode().count('name="_selected_action"') == 30


def test_filters_overdue_and_open_exception_and_search(clerk, shirt, mug, parcel):
    late = allocated(order_for([(shirt, 1)], mobile="13900000001"))[0]
    Shipment.objects.filter(pk=late.pk).update(ship_by=timezone.now() - timedelta(hours=1))
    page = clerk.get(CHANGELIST + "?overdue=yes").content.decode()
    assert late.shipment_no in page and parcel.shipment_no not in page and "已超时" in page

    shipped, _ = shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    logistics_exception_open(shipment=shipped, kind="stale", actor=SYSTEM)
    page = clerk.get(CHANGELIST + "?open_exception=yes").content.decode()
    assert parcel.shipment_no in page and late.shipment_no not in page

    order_no = late.lines.first().order.order_no
    for term, expected, other in ((order_no, late, parcel), ("sf1234567890", parcel, late)):
        page = clerk.get(CHANGELIST, {"q": term}).content.decode()
        assert expected.shipment_no in page and other.shipment_no not in page
    page = clerk.get(CHANGELIST + "?carrier__exact=shunfeng").content.decode()
    assert parcel.shipment_no in page and late.shipment_no not in page


def test_pick_wave_action_opens_a_printable_pick_list(clerk, shirt, mug, parcel):
    second = allocated(order_for([(shirt, 3)], mobile="13900000002"))[0]
    response = action(clerk, "start_pick_wave", [parcel, second])
    wave = PickWave.objects.get()
    assert response.redirect_chain[-1][0] == f"/admin/fulfillment/pickwave/{wave.pk}/pick-list/"
    assert set(Shipment.objects.values_list("status", flat=True)) == {ShipmentStatus.PICKING}
    page = response.content.decode()
    assert "@page { size: A4" in page and wave.wave_no in page and "杭州主仓" in page
    # bins in walking order: A-03-2 (5 shirts for two orders) before B-01-1 (one mug)
    assert page.index("A-03-2") < page.index("B-01-1")
    assert "TSHIRT-L-BLK" in page and "6901234567892" in page
    for shipment in (parcel, second):
        assert shipment.lines.first().order.order_no in page and shipment.shipment_no in page
    assert "共 <b>6</b> 件" in page and "包裹 <b>2</b> 个" in page
    assert clerk.get("/admin/fulfillment/pickwave/").content.decode().count("打开拣货单") == 1


def test_pick_wave_of_two_warehouses_is_refused(clerk, hangzhou, guangzhou, stocked, parcel):
    far = stocked({guangzhou: 5}, code="GZ-ONLY")
    other = allocated(order_for([(far, 1)], province="广东省", mobile="13900000003"))[0]
    assert other.warehouse == guangzhou
    response = action(clerk, "start_pick_wave", [parcel, other])
    assert "一个拣货波次只能包含同一仓库的包裹" in messages_of(response)
    assert not PickWave.objects.exists()
    assert set(Shipment.objects.values_list("status", flat=True)) == {ShipmentStatus.PENDING}


def test_scan_pack_and_ship_from_the_parcel_pages(clerk, parcel, shirt):
    order = parcel.lines.first().order
    order_page = clerk.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert parcel.shipment_no in order_page and "待拣货" in order_page
    assert 'value="ship"' not in order_page  # shipping is per parcel, not an order button
    pick_wave_start(warehouse=parcel.warehouse, shipments=[parcel], actor=SYSTEM)
    scan = f"{CHANGELIST}{parcel.pk}/scan/"
    assert "验货" in clerk.get(f"{CHANGELIST}{parcel.pk}/change/").content.decode()

    response = clerk.post(scan, {"code": "NOT-IN-PARCEL"}, follow=True)
    assert "扫描的商品「NOT-IN-PARCEL」不在此包裹中，请勿装入" in messages_of(response)
    for code in ("6901234567892", "TSHIRT-L-BLK", "MUG-WHT"):  # barcode or SKU code, one unit each
        response = clerk.post(scan, {"code": code}, follow=True)
        assert "✔" in messages_of(response)
    response = clerk.post(scan, {"code": "6901234567892"}, follow=True)
    assert "已扫够 2 件，多出的一件请勿装入" in messages_of(response)
    assert sorted(parcel.lines.values_list("packed_quantity", "quantity")) == [(1, 1), (2, 2)]
    assert "全部验完，打包" in response.content.decode()

    response = clerk.post(f"{CHANGELIST}{parcel.pk}/pack/", follow=True)
    assert "已打包" in messages_of(response)
    assert Shipment.objects.get(pk=parcel.pk).status == ShipmentStatus.PACKED

    ship = f"{CHANGELIST}{parcel.pk}/ship/"
    form = clerk.get(ship).content.decode()
    assert "顺丰速运" in form and "中通快递" in form
    response = clerk.post(ship, {"carrier": "shunfeng", "tracking_no": "1", "qty_0": 2, "qty_1": 1})
    assert "不符合顺丰速运的格式" in response.content.decode()
    assert Shipment.objects.get(pk=parcel.pk).status == ShipmentStatus.PACKED

    response = clerk.post(ship, {"carrier": "shunfeng", "tracking_no": "sf1234567890", "qty_0": 2, "qty_1": 1})
    assert response.status_code == 302
    parcel.refresh_from_db()
    assert (parcel.status, parcel.carrier, parcel.tracking_no) == ("shipped", "shunfeng", "SF1234567890")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SHIPPED
    page = clerk.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert parcel.shipment_no in page and "SF1234567890" in page and "已发货" in page


def test_partial_ship_leaves_the_rest_in_a_new_pending_parcel(clerk, parcel):
    response = clerk.post(
        f"{CHANGELIST}{parcel.pk}/ship/",
        {"carrier": "zhongtong", "tracking_no": "789012345678", "qty_0": 1, "qty_1": 0},
    )
    assert response.status_code == 302
    rest = Shipment.objects.get(split_from=parcel)
    assert rest.status == ShipmentStatus.PENDING
    assert sorted((line.order_line.sku_code, line.quantity) for line in rest.lines.all()) == [
        ("MUG-WHT", 1),
        ("TSHIRT-L-BLK", 1),
    ]
    assert Order.objects.get(pk=parcel.lines.first().order_id).fulfillment_status == "partially_shipped"


def test_a_role_without_the_permission_is_refused_in_chinese_and_nothing_changes(staff, parcel):
    agent = login(staff("客服", "kefu"))
    page = agent.get(f"{CHANGELIST}{parcel.pk}/change/").content.decode()
    assert 'id="scan-link"' not in page and 'id="ship-link"' not in page  # not this role's buttons
    response = agent.post(
        f"{CHANGELIST}{parcel.pk}/ship/",
        {"carrier": "shunfeng", "tracking_no": "SF1234567890", "qty_0": 2, "qty_1": 1},
        follow=True,
    )
    assert "您没有执行此操作的权限" in messages_of(response)
    response = agent.post(f"{CHANGELIST}{parcel.pk}/scan/", {"code": "MUG-WHT"}, follow=True)
    assert "您没有执行此操作的权限" in messages_of(response)
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.PENDING and parcel.tracking_no == ""
    assert list(parcel.lines.values_list("packed_quantity", flat=True)) == [0, 0]
    # the pick-wave action is not offered to customer service at all
    assert "生成拣货波次" not in agent.get(CHANGELIST).content.decode()


def test_customer_service_merges_two_parcels_of_one_customer(staff, shirt, mug, settings):
    settings.OMS_AUTO_MERGE = False
    (first,) = allocated(order_for([(shirt, 1)]))
    (second,) = allocated(order_for([(mug, 1)]))
    response = action(login(staff("客服", "kefu")), "merge_selected", [first, second])
    assert f"已合并为包裹 {first.shipment_no}" in messages_of(response)
    assert Shipment.objects.get(pk=second.pk).merged_into_id == first.pk
    assert first.lines.count() == 2


def test_correct_tracking_before_the_first_scan(clerk, parcel):
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    assert "更正运单号" in clerk.get(f"{CHANGELIST}{parcel.pk}/change/").content.decode()
    url = f"{CHANGELIST}{parcel.pk}/correct-tracking/"
    response = clerk.post(url, {"carrier": "shunfeng", "tracking_no": "SF1234567899"}, follow=True)
    assert "运单号已更正" in messages_of(response)
    assert Shipment.objects.get(pk=parcel.pk).tracking_no == "SF1234567899"
    TrackingEvent.objects.create(shipment=parcel, time=timezone.now(), state="picked_up", context="已揽收")
    response = clerk.post(url, {"carrier": "shunfeng", "tracking_no": "SF1234567800"}, follow=True)
    assert "不能更正运单号" in messages_of(response)
    assert Shipment.objects.get(pk=parcel.pk).tracking_no == "SF1234567899"


def test_exception_queue_open_first_oldest_first_claim_and_resolve(staff, parcel, shirt):
    shipped, _ = shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    other = allocated(order_for([(shirt, 1)], mobile="13900000004"))[0]
    other, _ = shipment_ship(shipment=other, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567891")
    resolved = logistics_exception_open(shipment=other, kind="problem", actor=SYSTEM)
    LogisticsException.objects.filter(pk=resolved.pk).update(resolved_at=timezone.now(), outcome="closed")
    old = logistics_exception_open(shipment=shipped, kind="stale", actor=SYSTEM)
    new = logistics_exception_open(shipment=other, kind="no_pickup", actor=SYSTEM)
    LogisticsException.objects.filter(pk=old.pk).update(opened_at=timezone.now() - timedelta(days=2))

    agent_user = staff("客服", "kefu")
    agent = login(agent_user)
    response = agent.get("/admin/fulfillment/logisticsexception/")
    assert [c.pk for c in response.context["cl"].result_list] == [old.pk, new.pk, resolved.pk]

    response = agent.post(
        "/admin/fulfillment/logisticsexception/",
        {"action": "claim_selected", "_selected_action": [old.pk]},
        follow=True,
    )
    assert "已认领 1 个异常" in messages_of(response)
    assert LogisticsException.objects.get(pk=old.pk).owner == agent_user

    url = f"/admin/fulfillment/logisticsexception/{old.pk}/change/"
    assert "处理结果" in agent.get(url).content.decode()
    response = agent.post(url, {"outcome": "contact_customer", "note": "已电话联系顾客"}, follow=True)
    case = LogisticsException.objects.get(pk=old.pk)
    assert case.resolved_at and case.outcome == "contact_customer" and case.resolved_by == agent_user

    clerk = login(staff("仓储", "cangchu"))
    response = clerk.post(f"/admin/fulfillment/logisticsexception/{new.pk}/change/", {"outcome": "closed"})
    assert response.status_code == 403
    assert LogisticsException.objects.get(pk=new.pk).resolved_at is None


def test_warehouse_provinces_are_typed_as_text(staff, hangzhou):
    boss = login(staff("主管", "zhuguan"))
    url = f"/admin/inventory/warehouse/{hangzhou.pk}/change/"
    assert "浙江省、上海市" in boss.get(url).content.decode()
    data = {"code": "HZ01", "name": "杭州主仓", "active": "on", "provinces": "浙江, 上海市，江苏", "priority": 5}
    assert boss.post(url, data).status_code == 302
    hangzhou.refresh_from_db()
    assert (hangzhou.provinces, hangzhou.priority) == (["浙江省", "上海市", "江苏省"], 5)
    response = boss.post(url, {**data, "provinces": "浙江、火星"})
    assert "不认识的省份：火星" in response.content.decode()
    assert Warehouse.objects.get(pk=hangzhou.pk).provinces == ["浙江省", "上海市", "江苏省"]


def test_sku_list_shows_bin_and_barcode(staff, shirt):
    page = login(staff("仓储", "cangchu")).get("/admin/inventory/sku/", {"q": "6901234567892"}).content.decode()
    assert "A-03-2" in page and "TSHIRT-L-BLK" in page


def test_every_fulfillment_screen_renders_for_a_supervisor_and_nothing_can_be_deleted(staff, parcel, admin_user):
    shipped, _ = shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    case = logistics_exception_open(shipment=shipped, kind="problem", actor=SYSTEM)
    TrackingEvent.objects.create(shipment=shipped, time=timezone.now(), state="problem", context="【杭州】地址不详")
    boss = login(staff("主管", "zhuguan"))
    for url in (
        CHANGELIST,
        f"{CHANGELIST}{parcel.pk}/change/",
        "/admin/fulfillment/pickwave/",
        "/admin/fulfillment/logisticsexception/",
        f"/admin/fulfillment/logisticsexception/{case.pk}/change/",
        "/admin/fulfillment/trackingpush/",
        "/admin/fulfillment/trackingsubscription/",
        "/admin/inventory/warehouse/",
    ):
        response = boss.get(url)
        assert response.status_code == 200, url
    assert "【杭州】地址不详" in boss.get(f"{CHANGELIST}{parcel.pk}/change/").content.decode()
    assert boss.post(f"{CHANGELIST}{parcel.pk}/delete/").status_code == 403
    superuser = login(admin_user)
    assert superuser.get("/admin/fulfillment/warehouseapikey/add/").status_code == 200
