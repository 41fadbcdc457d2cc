"""The customer-service console (issue 11) through its services and the admin: memos, address
correction, manual orders with a second reviewer, review flags raised for real and cleared
with a note."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oms.errors import InvalidTransition, PermissionDenied, ReviewRequired, ValidationFailed
from orders import services
from orders.events import Actor
from orders.manual import order_manual_approve, order_manual_create
from orders.memos import order_memo_add
from orders.models import CustomerRiskFlag, Order, OrderEvent, OrderMemo
from orders.review import address_doubt, remark_needs_review
from tests.conftest import force_login_verified
from tests.orders.test_admin import ADMIN_CHANGELIST_MAX_QUERIES

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
ADDRESS = {
    "receiver": "王五",
    "phone": "13900001111",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "detail": "文三路100号",
}


@pytest.fixture
def staff(django_user_model):
    def make(role: str, username: str):
        user = django_user_model.objects.create_user(username, password="pw-12345678", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        return django_user_model.objects.get(pk=user.pk)

    return make


def client_for(user) -> Client:
    client = Client()
    force_login_verified(client, user)
    return client


def new_order(create_order, **overrides) -> Order:
    return Order.objects.get(order_no=create_order(**overrides)["order_no"])


def pay(order: Order) -> Order:
    return services.order_pay(order=order, amount=order.payable_total, actor=SYSTEM)


# --- memos ---------------------------------------------------------------------------------


def test_a_memo_is_kept_on_the_timeline_and_never_changed_or_deleted(create_order, staff):
    order = new_order(create_order)
    kefu = staff("客服", "kefu1")
    memo = order_memo_add(order=order, user=kefu, text="  顾客来电：周六后再发  ")
    order_memo_add(order=order, user=kefu, text="已回电确认")
    assert [m.text for m in order.memos.all()] == ["顾客来电：周六后再发", "已回电确认"]
    event = order.events.filter(type=OrderEvent.Type.MEMO).first()
    assert event.actor_user == kefu and event.data["text"] == "顾客来电：周六后再发"
    memo.text = "改掉"
    with pytest.raises(ValueError):
        memo.save()
    with pytest.raises(ValueError):
        memo.delete()
    assert OrderMemo.objects.get(pk=memo.pk).text == "顾客来电：周六后再发"
    with pytest.raises(ValidationFailed):
        order_memo_add(order=order, user=kefu, text="   ")


def test_a_memo_is_never_in_the_storefront_api(create_order, staff, api):
    order = new_order(create_order)
    order_memo_add(order=order, user=staff("客服", "kefu1"), text="内部：顾客很挑剔")
    body = api.get(f"/api/v1/orders/{order.order_no}/").content.decode()
    assert "顾客很挑剔" not in body and "memo" not in body


def test_the_order_list_finds_an_order_by_its_memo_once(create_order, staff, django_assert_max_num_queries):
    target = new_order(create_order)
    for _ in range(5):
        create_order()
    kefu = staff("客服", "kefu1")
    order_memo_add(order=target, user=kefu, text="顾客要求开增值税发票")
    order_memo_add(order=target, user=kefu, text="增值税发票抬头已确认")
    client = client_for(kefu)
    with django_assert_max_num_queries(ADMIN_CHANGELIST_MAX_QUERIES + 1):
        page = client.get("/admin/orders/order/", {"q": "增值税"}).content.decode()
    assert page.count(f">{target.order_no}<") == 1
    assert "0 个订单" not in page
    assert page.count('class="action-select"') == 1
    # the ordinary search still works alongside it
    page = client.get("/admin/orders/order/", {"q": "张小姐"}).content.decode()
    assert page.count('class="action-select"') == 6


def test_the_order_page_writes_a_memo(create_order, staff):
    order = new_order(create_order)
    client = client_for(staff("客服", "kefu1"))
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "内部备注" in page and 'id="memo-add"' in page
    answer = client.post(f"/admin/orders/order/{order.pk}/memo/", {"text": "顾客说下午在家"})
    assert answer.status_code == 302
    assert "顾客说下午在家" in client.get(answer["Location"]).content.decode()
    operations = client_for(staff("运营", "yunying1"))
    answer = operations.post(f"/admin/orders/order/{order.pk}/memo/", {"text": "运营来写"}, follow=True)
    assert "没有执行此操作的权限" in answer.content.decode()
    assert order.memos.count() == 1


# --- hold in the admin ------------------------------------------------------------------


def test_the_order_page_holds_and_releases(create_order, staff):
    order = pay(new_order(create_order))
    client = client_for(staff("客服", "kefu1"))
    page = client.post(f"/admin/orders/order/{order.pk}/hold/", {"reason": ""}, follow=True).content.decode()
    assert "请填写挂起原因" in page
    page = client.post(f"/admin/orders/order/{order.pk}/hold/", {"reason": "顾客考虑中"}, follow=True).content.decode()
    assert "订单已挂起" in page and 'id="release-order"' in page
    assert client.get("/admin/orders/order/", {"held": "yes"}).content.decode().count('class="action-select"') == 1
    client.post(f"/admin/orders/order/{order.pk}/release/")
    order.refresh_from_db()
    assert order.held_at is None and order.hold_reason == ""
    assert client.get("/admin/orders/order/", {"held": "yes"}).content.decode().count('class="action-select"') == 0


# --- address correction -------------------------------------------------------------------


def test_address_and_phone_are_corrected_on_the_order_page(create_order, staff):
    order = pay(new_order(create_order))
    client = client_for(staff("客服", "kefu1"))
    url = f"/admin/orders/order/{order.pk}/correct-address/"
    page = client.get(url).content.decode()
    assert order.order_no in page and "13800138000" not in page  # nothing unmasked is prefilled
    assert client.post(url, {}).status_code == 200  # nothing filled in: nothing changes
    answer = client.post(url, {"phone": "13911112222", "detail": "文一西路998号"})
    assert answer.status_code == 302
    order.refresh_from_db()
    assert (order.receiver_phone, order.address_detail, order.city) == ("13911112222", "文一西路998号", "杭州市")
    event = order.events.get(type=OrderEvent.Type.ADDRESS_CHANGED)
    assert event.data["old"] == {"receiver_phone": "13800138000", "address_detail": "文三路100号"}
    assert event.data["new"] == {"receiver_phone": "13911112222", "address_detail": "文一西路998号"}


def test_the_warehouse_cannot_correct_an_address(create_order, staff):
    order = new_order(create_order)
    client = client_for(staff("仓储", "cangchu1"))
    page = client.post(f"/admin/orders/order/{order.pk}/correct-address/", {"detail": "文一西路998号"}, follow=True)
    assert "没有执行此操作的权限" in page.content.decode()
    assert Order.objects.get(pk=order.pk).address_detail == "文三路100号"


# --- manual orders -----------------------------------------------------------------------


def manual(user, tshirt, *, external_id="M-1", payment_method="bank_transfer", quantity=1) -> Order:
    order, created = order_manual_create(
        user=user,
        external_id=external_id,
        payment_method=payment_method,
        customer={"name": "王五", "mobile": "13900001111"},
        shipping_address=ADDRESS,
        lines=[{"sku": tshirt.code, "quantity": quantity}],
    )
    assert created
    return order


def test_a_manual_order_uses_catalogue_prices_and_waits_for_a_second_person(tshirt, staff):
    kefu = staff("客服", "kefu1")
    order = manual(kefu, tshirt, quantity=2)
    assert order.storefront.code == "manual" and order.created_by == kefu
    assert order.goods_total == Decimal("140.00") and order.review_flags == ["manual"]
    pay(order)
    order.refresh_from_db()
    assert order.status == "paid"  # no auto-approval


def test_the_creator_cannot_approve_their_own_manual_order_and_nothing_changes(tshirt, staff):
    boss = staff("主管", "zhuguan1")  # may review manual orders, but not this one
    order = pay(manual(boss, tshirt))
    events_before = order.events.count()
    for attempt in (
        lambda: order_manual_approve(order=order, actor=Actor.staff(boss)),
        lambda: services.order_approve(order=order, actor=Actor.staff(boss)),
    ):
        with pytest.raises((PermissionDenied, ReviewRequired)) as refused:
            attempt()
        assert refused.value.code in ("permission_denied", "review_required")
    with pytest.raises(PermissionDenied) as refused:
        order_manual_approve(order=order, actor=Actor.staff(boss))
    assert refused.value.code == "permission_denied"
    order.refresh_from_db()
    assert order.status == "paid" and order.review_flags == ["manual"]
    assert order.events.count() == events_before


def test_another_supervisor_approves_a_manual_order(tshirt, staff):
    order = pay(manual(staff("客服", "kefu1"), tshirt))
    order_manual_approve(order=order, actor=Actor.staff(staff("主管", "zhuguan1")), note="电话核实过")
    order.refresh_from_db()
    assert order.status == "awaiting_shipment" and order.review_flags == []
    cleared = order.events.get(type=OrderEvent.Type.REVIEW_CLEARED)
    assert cleared.data == {"flags": ["manual"], "note": "电话核实过", "entered_by": "kefu1"}
    with pytest.raises(InvalidTransition):
        order_manual_approve(order=order, actor=Actor.staff(staff("主管", "zhuguan2")))


def test_a_cod_manual_order_is_confirmed_only_after_its_second_review(tshirt, staff):
    kefu = staff("客服", "kefu1")
    order = manual(kefu, tshirt, payment_method="cod")
    with pytest.raises(ReviewRequired):
        services.order_confirm_cod(order=order, actor=Actor.staff(kefu))
    order_manual_approve(order=order, actor=Actor.staff(staff("主管", "zhuguan1")))
    order.refresh_from_db()
    assert order.status == "pending_payment" and order.review_flags == []
    services.order_confirm_cod(order=order, actor=Actor.staff(kefu))
    assert Order.objects.get(pk=order.pk).status == "awaiting_shipment"


def test_customer_service_cannot_review_a_manual_order(tshirt, staff):
    order = manual(staff("客服", "kefu1"), tshirt)
    with pytest.raises(PermissionDenied):
        order_manual_approve(order=order, actor=Actor.staff(staff("客服", "kefu2")))
    assert Order.objects.get(pk=order.pk).review_flags == ["manual"]


def test_a_manual_order_is_entered_and_reviewed_in_the_admin(tshirt, staff):
    kefu = client_for(staff("客服", "kefu1"))
    form = kefu.get("/admin/orders/order/manual/add/")
    assert form.status_code == 200 and "手动录入订单" in form.content.decode()
    external_id = form.context["form"].initial["external_id"]
    body = {
        "external_id": external_id,
        "payment_method": "bank_transfer",
        "customer_name": "王五",
        "customer_mobile": "13900001111",
        "receiver": "王五",
        "receiver_phone": "13900001111",
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
        "detail": "文三路100号",
        "postcode": "",
        "remark": "",
        "lines-TOTAL_FORMS": "3",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-sku": str(tshirt.pk),
        "lines-0-quantity": "2",
    }
    answer = kefu.post("/admin/orders/order/manual/add/", body)
    assert answer.status_code == 302
    assert kefu.post("/admin/orders/order/manual/add/", body).status_code == 302  # a double click
    order = Order.objects.get(external_id=external_id)
    assert Order.objects.filter(storefront__code="manual").count() == 1
    assert order.goods_total == Decimal("140.00")

    queue = kefu.get("/admin/orders/order/", {"review": "waiting"}).content.decode()
    assert order.order_no in queue
    own = kefu.post(f"/admin/orders/order/{order.pk}/review/", {"note": "自己审"}, follow=True).content.decode()
    assert "没有执行此操作的权限" in own
    boss = client_for(staff("主管", "zhuguan1"))
    page = boss.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "手动录入待复核" in page and "kefu1" in page
    boss.post(f"/admin/orders/order/{order.pk}/review/", {"note": "已核对"})
    assert Order.objects.get(pk=order.pk).review_flags == []


def test_the_warehouse_cannot_enter_a_manual_order(staff):
    client = client_for(staff("仓储", "cangchu1"))
    answer = client.get("/admin/orders/order/manual/add/", follow=True)
    assert "没有执行此操作的权限" in answer.content.decode()


# --- review flags raised for real --------------------------------------------------------


@pytest.mark.parametrize(
    ("remark", "enabled", "keywords", "flagged"),
    [
        ("请尽快发货", True, None, False),  # the default keywords: a routine remark is not flagged
        ("收货地址写错了，请改成公司", True, None, True),
        ("请尽快发货", True, [], True),  # no keywords: every remark
        ("", True, [], False),
        ("发票抬头：某公司", False, None, False),  # switched off
    ],
)
def test_the_remark_flag(create_order, settings, remark, enabled, keywords, flagged):
    settings.OMS_REVIEW_REMARK = enabled
    if keywords is not None:
        settings.OMS_REVIEW_REMARK_KEYWORDS = keywords
    assert remark_needs_review(remark) is flagged
    order = pay(new_order(create_order, remark=remark))
    assert ("remark" in order.review_flags) is flagged
    assert order.status == ("paid" if flagged else "awaiting_shipment")


@pytest.mark.parametrize(
    ("detail", "doubt"),
    [
        ("文三路100号", ""),
        ("100号", "too_short"),
        ("12345-678", "no_words"),
        ("杭州市邮政信箱 88 号", "po_box"),
        ("P.O. Box 1234, Hangzhou", "po_box"),
    ],
)
def test_the_address_flag(create_order, order_body, detail, doubt):
    assert address_doubt({"detail": detail}) == doubt
    order = new_order(create_order, shipping_address={**order_body["shipping_address"], "detail": detail})
    assert ("address" in order.review_flags) is bool(doubt)


def test_the_risk_flag_and_its_clearing_with_a_note(create_order, staff):
    CustomerRiskFlag.objects.create(mobile="13800138000", active=True, flagged_at=timezone.now(), reason="t")
    order = pay(new_order(create_order))
    assert order.review_flags == ["risk"] and order.status == "paid"
    finance = staff("财务", "caiwu1")
    services.order_approve(order=order, actor=Actor.staff(finance), note="顾客已付全款，风险可控")
    order.refresh_from_db()
    assert order.status == "awaiting_shipment" and order.review_flags == []
    cleared = order.events.get(type=OrderEvent.Type.REVIEW_CLEARED)
    assert cleared.data == {"flags": ["risk"], "note": "顾客已付全款，风险可控"} and cleared.actor_user == finance


def test_every_flag_is_cleared_in_the_admin_with_a_note(create_order, order_body, staff, settings):
    settings.OMS_LARGE_ORDER_THRESHOLD = Decimal("100.00")
    CustomerRiskFlag.objects.create(mobile="13800138000", active=True, flagged_at=timezone.now(), reason="t")
    order = pay(
        new_order(
            create_order, remark="请开发票", shipping_address={**order_body["shipping_address"], "detail": "信箱 12"}
        )
    )
    assert order.review_flags == ["large_amount", "risk", "remark", "address"]
    client = client_for(staff("客服", "kefu1"))
    queue = client.get("/admin/orders/order/", {"review": "waiting"}).content.decode()
    assert order.order_no in queue
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "备注待阅" in page and 'id="review-approve"' in page
    client.post(f"/admin/orders/order/{order.pk}/review/", {"note": "已电话核实地址和发票"})
    order.refresh_from_db()
    assert order.status == "awaiting_shipment"
    assert order.events.get(type=OrderEvent.Type.REVIEW_CLEARED).data["note"] == "已电话核实地址和发票"
    assert order.order_no not in client.get("/admin/orders/order/", {"review": "waiting"}).content.decode()


def test_a_cod_verification_clears_the_flags(create_order, staff):
    order = new_order(create_order, payment_method="cod", remark="送货前请打电话")
    assert order.review_flags == ["remark"]
    services.order_confirm_cod(order=order, actor=Actor.staff(staff("客服", "kefu1")), note="已电话核实")
    order.refresh_from_db()
    assert order.status == "awaiting_shipment" and order.review_flags == []


def test_order_create_still_runs_a_fixed_number_of_queries(storefront, make_sku):
    from tests.orders.factories import OrderInputFactory

    for index in range(10):
        make_sku(f"SKU-{index}", "10.00")

    def count(lines: int, external_id: str) -> int:
        payload = OrderInputFactory(
            external_id=external_id,
            remark="发票",
            lines=[{"sku": f"SKU-{i}", "quantity": 1} for i in range(lines)],
        )
        with CaptureQueriesContext(connection) as captured:
            services.order_create(storefront=storefront, payload=payload)
        return len(captured)

    assert count(1, "C-1") == count(10, "C-10")
