"""The role matrix, walked both ways: every role can do its whole job, and nothing more.

EXPECTED is the matrix the README shows (a test below keeps the two equal). Each action runs
the way staff run it: a service with the staff user as the actor, or an admin page. An
allowed action must work; a refused one must be refused (permission_denied / 403) and leave
the data as it was.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.utils import timezone

from fulfillment import services as fulfillment
from fulfillment.imports import shipments_import
from fulfillment.models import PickWave, Shipment
from fulfillment.services import order_allocate
from inventory.models import StockLevel
from inventory.services import stock_adjust
from orders import services as order_services
from orders.events import Actor
from orders.holds import order_hold, order_release
from orders.manual import order_manual_approve, order_manual_create
from orders.memos import order_memo_add
from orders.models import CustomerRiskFlag, Order
from orders.risk import customer_risk_clear
from payments import services as payment_services
from payments.models import Refund
from reminders.services import manual_reminder_record
from tests.conftest import force_login_verified
from workflows.cancellation import order_cancel

ROLES = ["客服", "仓储", "财务", "运营", "主管"]
SYSTEM = Actor.system("test")

# action -> the roles that may do it
EXPECTED = {
    "取消订单": {"客服", "主管"},
    "取消已付款订单（原路退款）": {"客服", "主管"},
    "货到付款核实": {"客服", "主管"},
    "代顾客确认收货": {"客服", "主管"},
    "修改收货地址": {"客服", "主管"},
    "审核需复核的订单": {"客服", "财务", "主管"},
    "解除顾客风险标记": {"客服", "主管"},
    "查看完整手机号和地址（记录）": {"客服", "主管"},
    "记录人工催付": {"客服", "主管"},
    "查看提醒与催付报表": {"客服", "运营", "主管"},
    "生成拣货波次": {"仓储", "主管"},
    "验货与打包": {"仓储", "主管"},
    "发货": {"仓储", "主管"},
    "合并包裹（合单）": {"客服", "仓储", "主管"},
    "更正运单号": {"仓储", "主管"},
    "处理物流异常": {"客服", "主管"},
    "批量导入发货": {"仓储", "主管"},
    "调整库存": {"仓储", "主管"},
    "审批退款": {"财务", "主管"},
    "登记对公转账": {"财务", "主管"},
    "处理对账差异": {"财务", "主管"},
    "导入对账单": {"财务", "主管"},
    "查看支付单": {"客服", "财务", "主管"},
    "编辑提醒规则": {"运营", "主管"},
    "编辑优惠券": {"运营", "主管"},
    "查看个人信息查看记录": {"主管"},
    "写订单内部备注": {"客服", "仓储", "财务", "主管"},
    "挂起和释放订单": {"客服", "主管"},
    "手动录入订单": {"客服", "主管"},
    "复核他人手动录入的订单": {"主管"},
}


MANUAL_ADDRESS = {
    "receiver": "王五",
    "phone": "13900001111",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "detail": "文三路100号",
}


def staff(role: str, django_user_model, suffix: str = ""):
    user = django_user_model.objects.create_user(f"u-{hash(role) % 10**6}{suffix}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return django_user_model.objects.get(pk=user.pk)  # no stale permission cache


def new_order(create_order, **overrides) -> Order:
    return Order.objects.get(order_no=create_order(**overrides)["order_no"])


def paid(order: Order) -> Order:
    return order_services.order_pay(order=order, amount=order.payable_total, actor=SYSTEM)


def admin_get(user, url: str) -> int:
    client = Client()
    force_login_verified(client, user)  # 财务 and 主管 pass two-factor first
    return client.get(url).status_code


def page(user, url: str) -> None:
    status = admin_get(user, url)
    if status == 403:
        raise PermissionDenied(url)
    assert status == 200, (url, status)


# Each action: do it as `user`; raise PermissionDenied if refused; check its effect if allowed.


def cancel(user, create_order, **_):
    order = new_order(create_order)
    order_cancel(order=order, actor=Actor.staff(user), reason="changed_mind")
    assert Order.objects.get(pk=order.pk).status == "cancelled"


def cancel_paid(user, create_order, **_):
    order = paid(new_order(create_order))
    try:
        order_cancel(order=order, actor=Actor.staff(user), reason="changed_mind")
    finally:
        cancelled = Order.objects.get(pk=order.pk).status == "cancelled"
        assert cancelled == Refund.objects.filter(order=order).exists()
    assert cancelled


def confirm_cod(user, create_order, **_):
    order = new_order(create_order, payment_method="cod")
    order_services.order_confirm_cod(order=order, actor=Actor.staff(user))
    assert Order.objects.get(pk=order.pk).status == "awaiting_shipment"


def parcel_of(order: Order) -> Shipment:
    """A paid order's one parcel (allocation runs after commit in real life; here, by hand)."""
    order_allocate(order=order)
    return Shipment.objects.get(lines__order=order, status="pending")


def shipped_parcel(create_order) -> Shipment:
    parcel = parcel_of(paid(new_order(create_order)))
    return fulfillment.shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")[0]


def complete(user, create_order, **_):
    order = paid(new_order(create_order))
    fulfillment.shipment_ship(shipment=parcel_of(order), actor=SYSTEM, carrier="shunfeng", tracking_no="SF1234567890")
    order_services.order_complete(order=order, actor=Actor.staff(user))
    assert Order.objects.get(pk=order.pk).status == "completed"


def change_address(user, create_order, **_):
    order = new_order(create_order)
    order_services.order_change_address(order=order, actor=Actor.staff(user), address={"detail": "文一路1号"})
    assert Order.objects.get(pk=order.pk).address_detail == "文一路1号"


def review(user, create_order, settings, **_):
    settings.OMS_LARGE_ORDER_THRESHOLD = Decimal("100.00")
    order = paid(new_order(create_order))
    assert order.status == "paid"
    order_services.order_approve(order=order, actor=Actor.staff(user))
    assert Order.objects.get(pk=order.pk).status == "awaiting_shipment"


def clear_risk(user, **_):
    flag = CustomerRiskFlag.objects.create(mobile="13800000001", active=True, flagged_at=timezone.now())
    try:
        customer_risk_clear(flag=flag, user=user, reason="已电话核实")
    finally:
        flag.refresh_from_db()
    assert not flag.active


def reveal_pii(user, create_order, **_):
    order = new_order(create_order)
    try:
        full = order_services.order_reveal_pii(order=order, user=user)
    finally:
        logged = order.pii_accesses.filter(user=user).exists()
    assert logged and full["customer_mobile"] == order.customer_mobile


def manual_reminder(user, create_order, **_):
    order = new_order(create_order)
    record = manual_reminder_record(order=order, channel="phone", outcome="considering", actor=Actor.staff(user))
    assert record.created_by == user


def reminders_pages(user, **_):
    page(user, "/admin/reminders/reminder/")
    page(user, "/admin/reminders/report/")


def pick_wave(user, create_order, **_):
    parcel = parcel_of(paid(new_order(create_order)))
    try:
        fulfillment.pick_wave_start(warehouse=parcel.warehouse, shipments=[parcel], actor=Actor.staff(user))
    finally:
        parcel.refresh_from_db()
        assert (parcel.status == "picking") == PickWave.objects.exists()
    assert parcel.status == "picking"


def scan_and_pack(user, create_order, **_):
    parcel = parcel_of(paid(new_order(create_order)))
    fulfillment.pick_wave_start(warehouse=parcel.warehouse, shipments=[parcel], actor=SYSTEM)
    try:
        for _unit in range(parcel.lines.get().quantity):
            fulfillment.shipment_scan(shipment=parcel, code="TSHIRT-L-BLK", actor=Actor.staff(user))
        fulfillment.shipment_pack(shipment=parcel, actor=Actor.staff(user))
    finally:
        scanned = parcel.lines.get().packed_quantity
        parcel.refresh_from_db()
    assert parcel.status == "packed" and scanned


def ship(user, create_order, **_):
    order = paid(new_order(create_order))
    parcel = parcel_of(order)
    try:
        fulfillment.shipment_ship(
            shipment=parcel, actor=Actor.staff(user), carrier="shunfeng", tracking_no="SF1234567890"
        )
    finally:
        parcel_shipped = Shipment.objects.get(pk=parcel.pk).status == "shipped"
        assert parcel_shipped == (Order.objects.get(pk=order.pk).status == "shipped")
    assert Order.objects.get(pk=order.pk).status == "shipped"


def merge(user, create_order, settings, **_):
    settings.OMS_AUTO_MERGE = False
    first, second = (parcel_of(paid(new_order(create_order))) for _order in range(2))
    try:
        fulfillment.shipments_merge(shipments=[first, second], actor=Actor.staff(user))
    finally:
        second.refresh_from_db()
    assert second.merged_into_id == first.pk


def correct_tracking(user, create_order, **_):
    parcel = shipped_parcel(create_order)
    try:
        fulfillment.shipment_correct_tracking(
            shipment=parcel, actor=Actor.staff(user), carrier="shunfeng", tracking_no="SF1234567899"
        )
    finally:
        parcel.refresh_from_db()
    assert parcel.tracking_no == "SF1234567899"


def resolve_exception(user, create_order, **_):
    parcel = shipped_parcel(create_order)
    case = fulfillment.logistics_exception_open(shipment=parcel, kind="stale", actor=SYSTEM)
    try:
        fulfillment.logistics_exception_resolve(case=case, actor=Actor.staff(user), outcome="contact_customer")
    finally:
        case.refresh_from_db()
    assert case.resolved_at is not None


def import_shipments(user, create_order, **_):
    """One row of an import file, through the same service as the command and the admin upload."""
    parcel = parcel_of(paid(new_order(create_order)))
    try:
        results = shipments_import(
            rows=[{"shipment_no": parcel.shipment_no, "carrier": "shunfeng", "tracking_no": "SF1234567891"}],
            actor=Actor.staff(user),
        )
    finally:
        parcel.refresh_from_db()
    assert [r.status for r in results] == ["ok"] and parcel.status == "shipped"


def adjust_stock(user, tshirt, **_):
    level = StockLevel.objects.get(sku=tshirt)
    try:
        stock_adjust(sku=tshirt, warehouse=level.warehouse, delta=5, reason="received", actor_label="t", user=user)
    finally:
        level.refresh_from_db()
    assert level.on_hand == 105


def approve_refund(user, create_order, **_):
    order = new_order(create_order)
    payment_services.bank_transfer_record(
        payer="某公司",
        amount=order.payable_total,
        remark=order.order_no,
        received_at=timezone.now(),
        bank_reference="B1",
    )
    refund = payment_services.refund_request(order=order, amount=Decimal("10.00"), reason="部分退款", actor=SYSTEM)
    payment_services.refund_approve(refund=refund, user=user)
    assert Refund.objects.get(pk=refund.pk).status == "approved"


def bank_transfer(user, create_order, **_):
    order = new_order(create_order)
    page(user, "/admin/payments/banktransfer/add/")
    payment_services.bank_transfer_record(
        payer="某公司",
        amount=order.payable_total,
        remark=order.order_no,
        received_at=timezone.now() - timedelta(minutes=1),
        bank_reference="B2",
        user=user,
    )
    assert Order.objects.get(pk=order.pk).status == "awaiting_shipment"


def reconciliation(user, **_):
    page(user, "/admin/payments/reconciliationcase/")


def statement_import(user, **_):
    page(user, "/admin/payments/statementimport/upload/")


def payments_page(user, **_):
    page(user, "/admin/payments/payment/")


def reminder_rules(user, **_):
    page(user, "/admin/reminders/reminderrule/add/")


def coupons(user, **_):
    page(user, "/admin/orders/coupon/add/")


def pii_log(user, **_):
    page(user, "/admin/orders/piiaccess/")


def memo(user, create_order, **_):
    order = new_order(create_order)
    try:
        order_memo_add(order=order, user=user, text="顾客来电确认地址")
    finally:
        written = order.memos.exists() == order.events.filter(type="memo").exists()
    assert written and order.memos.get().author == user


def hold_release(user, create_order, **_):
    order = paid(new_order(create_order))
    try:
        order_hold(order=order, actor=Actor.staff(user), reason="顾客考虑换颜色")
    finally:
        held = Order.objects.get(pk=order.pk).held_at is not None
    assert held
    order_release(order=order, actor=Actor.staff(user))
    assert Order.objects.get(pk=order.pk).held_at is None


def manual_entry(user, tshirt, **_):
    try:
        order, _created = order_manual_create(
            user=user,
            external_id="M-ROLE",
            payment_method="bank_transfer",
            customer={"name": "王五", "mobile": "13900001111"},
            shipping_address=MANUAL_ADDRESS,
            lines=[{"sku": tshirt.code, "quantity": 1}],
        )
    finally:
        entered = Order.objects.filter(external_id="M-ROLE").exists()
    assert entered and order.created_by == user


def manual_review(user, tshirt, django_user_model, **_):
    clerk = staff("客服", django_user_model, "-clerk")
    order, _created = order_manual_create(
        user=clerk,
        external_id="M-REVIEW",
        payment_method="bank_transfer",
        customer={"name": "王五", "mobile": "13900001111"},
        shipping_address=MANUAL_ADDRESS,
        lines=[{"sku": tshirt.code, "quantity": 1}],
    )
    try:
        order_manual_approve(order=order, actor=Actor.staff(user))
    finally:
        flags = Order.objects.get(pk=order.pk).review_flags
    assert "manual" not in flags


ACTIONS = {
    "取消订单": cancel,
    "取消已付款订单（原路退款）": cancel_paid,
    "货到付款核实": confirm_cod,
    "代顾客确认收货": complete,
    "修改收货地址": change_address,
    "审核需复核的订单": review,
    "解除顾客风险标记": clear_risk,
    "查看完整手机号和地址（记录）": reveal_pii,
    "记录人工催付": manual_reminder,
    "查看提醒与催付报表": reminders_pages,
    "生成拣货波次": pick_wave,
    "验货与打包": scan_and_pack,
    "发货": ship,
    "合并包裹（合单）": merge,
    "更正运单号": correct_tracking,
    "处理物流异常": resolve_exception,
    "批量导入发货": import_shipments,
    "调整库存": adjust_stock,
    "审批退款": approve_refund,
    "登记对公转账": bank_transfer,
    "处理对账差异": reconciliation,
    "导入对账单": statement_import,
    "查看支付单": payments_page,
    "编辑提醒规则": reminder_rules,
    "编辑优惠券": coupons,
    "查看个人信息查看记录": pii_log,
    "写订单内部备注": memo,
    "挂起和释放订单": hold_release,
    "手动录入订单": manual_entry,
    "复核他人手动录入的订单": manual_review,
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_the_role_matrix(role, action, django_user_model, create_order, tshirt, settings):
    user = staff(role, django_user_model)
    run = ACTIONS[action]
    if role in EXPECTED[action]:
        run(user, create_order=create_order, tshirt=tshirt, settings=settings, django_user_model=django_user_model)
    else:
        with pytest.raises(PermissionDenied):
            run(user, create_order=create_order, tshirt=tshirt, settings=settings, django_user_model=django_user_model)


def test_a_refusal_is_a_domain_error_with_a_stable_code(django_user_model, create_order):
    warehouse_user = staff("仓储", django_user_model)
    order = new_order(create_order)
    with pytest.raises(PermissionDenied) as raised:
        order_cancel(order=order, actor=Actor.staff(warehouse_user), reason="changed_mind")
    assert raised.value.code == "permission_denied"
    assert "可取消订单" in raised.value.message
    assert Order.objects.get(pk=order.pk).status == "pending_payment"
    assert order.events.count() == 1  # only 下单


def test_the_readme_shows_this_matrix():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Permission matrix", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    shown = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        shown[cells[0]] = {role for role, cell in zip(ROLES, cells[1:], strict=True) if cell == "✓"}
    assert shown == EXPECTED
    assert re.search(r"\| 操作 \| 客服 \| 仓储 \| 财务 \| 运营 \| 主管 \|", readme)
