"""After-sales through the services and the storefront API: each type end to end, the money to
the cent, eligibility, stock, deadlines."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import CommandError, call_command

from aftersales.models import Aftersale, AftersaleStatus
from aftersales.services import (
    aftersale_approve,
    aftersale_create,
    aftersale_receive,
    aftersale_reject,
    aftersale_return_shipment,
    aftersales_run_clock,
    line_refund_amount,
)
from fulfillment.models import Shipment, ShipmentKind
from fulfillment.services import order_allocate, shipment_deliver, shipment_ship
from inventory.models import StockLevel
from oms.errors import PermissionDenied
from orders.events import Actor
from orders.models import OrderStatus
from orders.services import order_confirm_receipt_overdue
from tests.conftest import client_for
from tests.orders.factories import StorefrontFactory
from workflows.cancellation import order_cancel

from .conftest import SYSTEM, delivered_order, paid_order, pay_back

pytestmark = pytest.mark.django_db
A = AftersaleStatus


def stock(sku, warehouse) -> tuple[int, int, int]:
    level = StockLevel.objects.get(sku=sku, warehouse=warehouse)
    return level.on_hand, level.reserved, level.defective


def ledger_ok():
    call_command("check_ledger")  # exits non-zero (SystemExit) on any breach


def test_unit_amounts_add_up_to_the_line_net_whatever_the_split(hangzhou, stocked):
    shirt = stocked({hangzhou: 10}, price="33.33")
    order = paid_order([(shirt, 3)], coupon_code="")
    line = order.lines.get()
    line.discount = Decimal("10.00")  # 99.99 - 10.00 = 89.99 over 3 units
    for split in ([1, 1, 1], [2, 1], [1, 2], [3]):
        start, total = 0, Decimal("0")
        for units in split:
            total += line_refund_amount(line, unit_from=start, units=units)
            start += units
        assert total == Decimal("89.99"), split
    assert [line_refund_amount(line, unit_from=i, units=1) for i in range(3)] == [
        Decimal("29.99"),
        Decimal("30.00"),
        Decimal("30.00"),
    ]


def test_three_partial_refunds_of_a_discounted_line_add_up_to_its_net(hangzhou, stocked, kefu, cangchu, caiwu):
    shirt = stocked({hangzhou: 10}, price="70.00")
    order = delivered_order([(shirt, 3)])
    line = order.lines.get()
    net = line.line_total - line.discount
    refunded = Decimal("0")
    for _ in range(3):
        aftersale = aftersale_create(
            order=order,
            actor=SYSTEM,
            type="return_refund",
            reason="quality_issue",
            lines=[{"sku": shirt.code, "quantity": 1}],
        )
        aftersale_approve(aftersale=aftersale, actor=kefu)
        aftersale_return_shipment(
            aftersale=aftersale, actor=SYSTEM, carrier="yuantong", tracking_no=f"YT{aftersale.pk:013d}"
        )
        aftersale = aftersale_receive(
            aftersale=aftersale,
            actor=cangchu,
            inspections=[{"sku": shirt.code, "quantity_received": 1, "quantity_accepted": 1, "disposition": "restock"}],
        )
        assert aftersale.status == A.REFUNDING
        pay_back(aftersale.out_refund_no, caiwu)
        aftersales_run_clock()
        aftersale.refresh_from_db()
        assert aftersale.status == A.COMPLETED
        refunded += aftersale.refunded_amount
    assert refunded == net
    order.refresh_from_db()
    assert order.refunded_total == net
    ledger_ok()


def test_refund_covers_units_accepted_not_requested_and_restocks_only_restock(hangzhou, stocked, kefu, cangchu, caiwu):
    shirt = stocked({hangzhou: 10}, code="SHIRT", price="50.00")
    mug = stocked({hangzhou: 10}, code="MUG", price="30.00")
    order = delivered_order([(shirt, 2), (mug, 2)])
    assert stock(shirt, hangzhou) == (8, 0, 0)
    aftersale = aftersale_create(
        order=order,
        actor=SYSTEM,
        type="return_refund",
        reason="not_as_described",
        lines=[{"sku": "SHIRT", "quantity": 2}, {"sku": "MUG", "quantity": 2}],
    )
    assert aftersale.refund_amount == Decimal("160.00")
    aftersale_approve(aftersale=aftersale, actor=kefu)
    aftersale_return_shipment(aftersale=aftersale, actor=SYSTEM, carrier="yuantong", tracking_no="YT1234567890123")
    aftersale = aftersale_receive(
        aftersale=aftersale,
        actor=cangchu,
        inspections=[
            {"sku": "SHIRT", "quantity_received": 2, "quantity_accepted": 1, "disposition": "restock"},
            {"sku": "MUG", "quantity_received": 2, "quantity_accepted": 2, "disposition": "defective"},
        ],
    )
    assert aftersale.refund_amount == Decimal("110.00")  # 1 shirt + 2 mugs accepted
    assert stock(shirt, hangzhou) == (10, 0, 0)  # restocked
    assert stock(mug, hangzhou) == (8, 0, 2)  # held apart, not sellable
    pay_back(aftersale.out_refund_no, caiwu)
    aftersales_run_clock()
    order.refresh_from_db()
    assert order.refunded_total == Decimal("110.00")
    ledger_ok()


def test_refund_only_before_shipment_cancels_the_units_and_the_last_unit_takes_the_shipping_fee(
    hangzhou, stocked, kefu, caiwu
):
    shirt = stocked({hangzhou: 10}, price="30.00")  # 2 x 30 = 60 < 99: shipping 10.00
    order = paid_order([(shirt, 2)])
    (parcel,) = order_allocate(order=order)
    first = aftersale_create(
        order=order, actor=SYSTEM, type="refund_only", reason="changed_mind", lines=[{"sku": shirt.code, "quantity": 1}]
    )
    aftersale_approve(aftersale=first, actor=kefu)
    first.refresh_from_db()
    assert first.refund_amount == Decimal("30.00")
    assert stock(shirt, hangzhou) == (10, 1, 0)
    assert parcel.lines.get().quantity == 1
    pay_back(first.out_refund_no, caiwu)
    aftersales_run_clock()  # the refund went through: the request is done, the line free again

    second = aftersale_create(
        order=order, actor=SYSTEM, type="refund_only", reason="changed_mind", lines=[{"sku": shirt.code, "quantity": 1}]
    )
    aftersale_approve(aftersale=second, actor=kefu)
    second.refresh_from_db()
    assert second.refund_amount == Decimal("40.00")  # the last unit, with the shipping fee
    parcel.refresh_from_db()
    assert parcel.status == "cancelled"
    assert stock(shirt, hangzhou) == (10, 0, 0)
    pay_back(second.out_refund_no, caiwu)
    aftersales_run_clock()
    order.refresh_from_db()
    assert order.refunded_total == order.paid_total
    ledger_ok()


def test_over_claim_and_second_open_request_are_refused(hangzhou, stocked, api, storefront):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 2)])
    url = f"/api/v1/orders/{order.order_no}/aftersales/"
    body = {"type": "return_refund", "reason": "size_unfit", "lines": [{"sku": shirt.code, "quantity": 3}]}
    answer = api.post(url, body, format="json")
    assert answer.status_code == 409 and answer.json()["code"] == "quantity_exceeds_refundable"
    body["lines"][0]["quantity"] = 1
    created = api.post(url, body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["status"] == "requested" and created.json()["responsibility"] == "buyer"
    again = api.post(url, body, format="json")
    assert again.status_code == 409 and again.json()["code"] == "aftersale_in_progress"
    assert Aftersale.objects.count() == 1


def test_no_reason_window_edge_and_exemptions(hangzhou, stocked, api):
    shirt = stocked({hangzhou: 10})
    fresh = stocked({hangzhou: 10}, no_reason_return=False)
    order = delivered_order([(shirt, 1), (fresh, 1)])
    url = f"/api/v1/orders/{order.order_no}/aftersales/"

    def ask(sku):
        return api.post(
            url,
            {"type": "return_refund", "reason": "no_reason_7days", "lines": [{"sku": sku, "quantity": 1}]},
            format="json",
        )

    refused = ask(fresh.code)
    assert refused.status_code == 409 and refused.json()["code"] == "aftersale_not_allowed"
    with time_machine.travel(order.delivered_at + timedelta(days=7, seconds=1)):
        late = ask(shirt.code)
        assert late.status_code == 409 and late.json()["code"] == "aftersale_window_closed"
    with time_machine.travel(order.delivered_at + timedelta(days=7) - timedelta(seconds=1)):
        assert ask(shirt.code).status_code == 201
    # quality reasons run for the whole after-sales period (15 days)
    with time_machine.travel(order.delivered_at + timedelta(days=14)):
        answer = api.post(
            url,
            {"type": "return_refund", "reason": "quality_issue", "lines": [{"sku": fresh.code, "quantity": 1}]},
            format="json",
        )
        assert answer.status_code == 201, answer.json()


def test_cancelled_order_is_refused(hangzhou, stocked, api):
    shirt = stocked({hangzhou: 10})
    order = paid_order([(shirt, 1)])
    order_cancel(order=order, actor=SYSTEM, reason="changed_mind")
    answer = api.post(
        f"/api/v1/orders/{order.order_no}/aftersales/",
        {"type": "refund_only", "reason": "changed_mind", "lines": [{"sku": shirt.code, "quantity": 1}]},
        format="json",
    )
    assert answer.status_code == 409 and answer.json()["code"] == "aftersale_not_allowed"


def test_exchange_ships_a_tracked_replacement_on_the_original_order(hangzhou, stocked, kefu, cangchu, api):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 1)])
    answer = api.post(
        f"/api/v1/orders/{order.order_no}/aftersales/",
        {"type": "exchange", "reason": "size_unfit", "lines": [{"sku": shirt.code, "quantity": 1}]},
        format="json",
    )
    aftersale = Aftersale.objects.get(aftersale_no=answer.json()["aftersale_no"])
    aftersale_approve(aftersale=aftersale, actor=kefu)
    sent = api.post(
        f"/api/v1/aftersales/{aftersale.aftersale_no}/return-shipment/",
        {"carrier": "yuantong", "tracking_no": "YT1234567890123"},
        format="json",
    )
    assert sent.status_code == 200 and sent.json()["status"] == "return_shipped"
    assert sent.json()["return_shipment"]["tracking_no"] == "YT1234567890123"
    aftersale = aftersale_receive(
        aftersale=aftersale,
        actor=cangchu,
        inspections=[{"sku": shirt.code, "quantity_received": 1, "quantity_accepted": 1, "disposition": "restock"}],
    )
    assert aftersale.status == A.RESHIPPING
    replacement = aftersale.replacement_shipment
    assert replacement.kind == ShipmentKind.REPLACEMENT and replacement.status == "pending"
    assert stock(shirt, hangzhou) == (10, 1, 0)  # returned unit back on hand, one reserved for the replacement
    shipment_ship(shipment=replacement, actor=cangchu, carrier="shunfeng", tracking_no="SF9999999999")
    assert replacement.subscriptions.count() == 1  # tracked like any parcel
    aftersales_run_clock()
    aftersale.refresh_from_db()
    assert aftersale.status == A.COMPLETED
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED and not order.aftersale_open
    assert stock(shirt, hangzhou) == (9, 0, 0)


def test_resend_missing_item_needs_no_return(hangzhou, stocked, kefu):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 2)])
    aftersale = aftersale_create(
        order=order, actor=SYSTEM, type="resend", reason="missing_item", lines=[{"sku": shirt.code, "quantity": 1}]
    )
    aftersale_approve(aftersale=aftersale, actor=kefu)
    aftersale.refresh_from_db()
    assert aftersale.status == A.RESHIPPING
    assert aftersale.replacement_shipment.lines.get().quantity == 1


def test_reject_needs_a_reason_and_the_permission(hangzhou, stocked, kefu, cangchu):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 1)])
    aftersale = aftersale_create(
        order=order, actor=SYSTEM, type="return_refund", reason="size_unfit", lines=[{"sku": shirt.code, "quantity": 1}]
    )
    with pytest.raises(PermissionDenied):
        aftersale_reject(aftersale=aftersale, actor=cangchu, reason="no")
    aftersale_reject(aftersale=aftersale, actor=kefu, reason="商品已使用")
    aftersale.refresh_from_db()
    assert aftersale.status == A.REJECTED
    order.refresh_from_db()
    assert not order.aftersale_open


def test_approval_above_the_limit_needs_a_supervisor(hangzhou, stocked, kefu, staff, settings):
    settings.OMS_AFTERSALE_APPROVAL_LIMIT = Decimal("100.00")
    shirt = stocked({hangzhou: 10}, price="200.00")
    order = delivered_order([(shirt, 1)])
    aftersale = aftersale_create(
        order=order,
        actor=SYSTEM,
        type="return_refund",
        reason="quality_issue",
        lines=[{"sku": shirt.code, "quantity": 1}],
    )
    with pytest.raises(PermissionDenied):
        aftersale_approve(aftersale=aftersale, actor=kefu)
    aftersale.refresh_from_db()
    assert aftersale.status == A.REQUESTED
    aftersale_approve(aftersale=aftersale, actor=Actor.staff(staff("主管")))


def test_an_open_request_holds_the_receipt_confirmation(hangzhou, stocked):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 1)])
    aftersale_create(
        order=order,
        actor=SYSTEM,
        type="return_refund",
        reason="quality_issue",
        lines=[{"sku": shirt.code, "quantity": 1}],
    )
    with time_machine.travel(order.delivered_at + timedelta(days=30)):
        assert order_confirm_receipt_overdue() == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED


def test_deadlines(hangzhou, stocked, kefu, settings):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 3)])
    no_reason = aftersale_create(
        order=order,
        actor=SYSTEM,
        type="return_refund",
        reason="no_reason_7days",
        lines=[{"sku": shirt.code, "quantity": 1}],
    )
    order2 = delivered_order([(shirt, 1)], mobile="13900139000")
    quality = aftersale_create(
        order=order2,
        actor=SYSTEM,
        type="return_refund",
        reason="quality_issue",
        lines=[{"sku": shirt.code, "quantity": 1}],
    )
    with time_machine.travel(no_reason.deadline - timedelta(hours=3)):
        assert aftersales_run_clock().warned == 2
    with time_machine.travel(no_reason.deadline + timedelta(minutes=1)):
        report = aftersales_run_clock()
    no_reason.refresh_from_db()
    quality.refresh_from_db()
    assert no_reason.status == A.AWAITING_RETURN  # the platforms' rule: agreed by silence
    assert quality.status == A.REQUESTED and quality.escalated  # to the supervisor's queue
    assert (report.auto_approved, report.escalated) == (1, 1)
    # the buyer does not send the return within 7 days: closed
    with time_machine.travel(no_reason.deadline + timedelta(seconds=1)):
        aftersales_run_clock()
    no_reason.refresh_from_db()
    assert no_reason.status == A.CLOSED
    # the warehouse does not receive a delivered return within 10 days: escalated
    aftersale_approve(aftersale=quality, actor=kefu)
    aftersale_return_shipment(aftersale=quality, actor=SYSTEM, carrier="yuantong", tracking_no="YT1234567890999")
    quality.refresh_from_db()
    parcel = quality.return_shipment
    shipment_deliver(shipment=parcel, actor=SYSTEM, at=parcel.shipped_at)
    quality.escalated = False
    quality.save()
    with time_machine.travel(parcel.shipped_at + timedelta(days=10, minutes=1)):
        aftersales_run_clock()
    quality.refresh_from_db()
    assert quality.escalated and quality.status == A.RETURN_SHIPPED


def test_storefront_reads_only_its_own_requests(hangzhou, stocked, api):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 1)])
    aftersale = aftersale_create(
        order=order, actor=SYSTEM, type="return_refund", reason="size_unfit", lines=[{"sku": shirt.code, "quantity": 1}]
    )
    mine = api.get(f"/api/v1/aftersales/{aftersale.aftersale_no}/")
    assert mine.status_code == 200
    assert mine.json()["lines"] == [{"sku": shirt.code, "quantity": 1, "refund_amount": "70.00"}]
    other = client_for(StorefrontFactory(code="other", name="别家"))
    assert other.get(f"/api/v1/aftersales/{aftersale.aftersale_no}/").status_code == 404
    cancelled = api.post(f"/api/v1/aftersales/{aftersale.aftersale_no}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_check_ledger_fails_when_a_line_is_refunded_above_its_net(hangzhou, stocked, kefu):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 1)])
    aftersale = aftersale_create(
        order=order, actor=SYSTEM, type="refund_only", reason="missing_item", lines=[{"sku": shirt.code, "quantity": 1}]
    )
    aftersale_approve(aftersale=aftersale, actor=kefu)
    ledger_ok()
    aftersale.lines.update(refund_amount=Decimal("70.01"))  # one cent above the line's net
    with pytest.raises(CommandError, match="1 处问题"):
        call_command("check_ledger")


def test_the_order_json_carries_an_aftersales_summary(hangzhou, stocked, api):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 1)])
    aftersale = aftersale_create(
        order=order, actor=SYSTEM, type="return_refund", reason="size_unfit", lines=[{"sku": shirt.code, "quantity": 1}]
    )
    body = api.get(f"/api/v1/orders/{order.order_no}/").json()
    assert body["aftersales"] == [
        {
            "aftersale_no": aftersale.aftersale_no,
            "type": "return_refund",
            "status": "requested",
            "status_display": "待处理",
            "refund_amount": "70.00",
            "refunded_amount": "0.00",
        }
    ]
    assert body["fulfillment_status"] == "delivered" and body["shipments"][0]["status"] == "delivered"


def test_exchange_for_another_spec_at_the_same_price_ships_that_spec(hangzhou, stocked, kefu, cangchu, api):
    large = stocked({hangzhou: 10}, code="TEE-L", price="70.00")
    medium = stocked({hangzhou: 10}, code="TEE-M", price="70.00")
    stocked({hangzhou: 10}, code="TEE-XL", price="80.00")
    order = delivered_order([(large, 1)])
    url = f"/api/v1/orders/{order.order_no}/aftersales/"
    body = {
        "type": "exchange",
        "reason": "size_unfit",
        "lines": [{"sku": "TEE-L", "quantity": 1, "exchange_to": "TEE-XL"}],
    }
    dearer = api.post(url, body, format="json")
    assert dearer.status_code == 400 and "lines[0].exchange_to" in dearer.json()["fields"]
    body["lines"][0]["exchange_to"] = "TEE-M"
    created = api.post(url, body, format="json")
    assert created.status_code == 201, created.json()
    aftersale = Aftersale.objects.get(aftersale_no=created.json()["aftersale_no"])
    aftersale_approve(aftersale=aftersale, actor=kefu)
    aftersale_return_shipment(aftersale=aftersale, actor=SYSTEM, carrier="yuantong", tracking_no="YT1234567890777")
    aftersale = aftersale_receive(
        aftersale=aftersale,
        actor=cangchu,
        inspections=[{"sku": "TEE-L", "quantity_received": 1, "quantity_accepted": 1, "disposition": "restock"}],
    )
    replacement = aftersale.replacement_shipment
    (line,) = replacement.lines.all()
    assert line.item_code == "TEE-M" and line.order_line.sku_code == "TEE-L"
    assert stock(medium, hangzhou) == (10, 1, 0) and stock(large, hangzhou) == (10, 0, 0)
    shipment_ship(shipment=replacement, actor=cangchu, carrier="shunfeng", tracking_no="SF8888888888")
    assert stock(medium, hangzhou) == (9, 0, 0)  # the medium left; the returned large is back on hand
    assert api.get(f"/api/v1/orders/{order.order_no}/shipments/").json()[-1]["lines"] == [
        {"sku": "TEE-M", "quantity": 1}
    ]
    ledger_ok()


def test_only_an_exchange_names_another_spec(hangzhou, stocked, api):
    stocked({hangzhou: 10}, code="TEE-M", price="70.00")
    large = stocked({hangzhou: 10}, code="TEE-L", price="70.00")
    order = delivered_order([(large, 1)])
    answer = api.post(
        f"/api/v1/orders/{order.order_no}/aftersales/",
        {
            "type": "return_refund",
            "reason": "size_unfit",
            "lines": [{"sku": "TEE-L", "quantity": 1, "exchange_to": "TEE-M"}],
        },
        format="json",
    )
    assert answer.status_code == 400 and answer.json()["code"] == "validation_error"
    assert not Aftersale.objects.exists()


def test_a_replacement_parcel_shipped_in_part_leaves_a_replacement_remainder(hangzhou, stocked, kefu, cangchu):
    shirt = stocked({hangzhou: 10})
    order = delivered_order([(shirt, 2)])
    aftersale = aftersale_create(
        order=order, actor=SYSTEM, type="resend", reason="missing_item", lines=[{"sku": shirt.code, "quantity": 2}]
    )
    aftersale_approve(aftersale=aftersale, actor=kefu)
    aftersale.refresh_from_db()
    parcel = aftersale.replacement_shipment
    shipment_ship(
        shipment=parcel,
        actor=cangchu,
        carrier="shunfeng",
        tracking_no="SF7777777777",
        lines=[{"sku": shirt.code, "quantity": 1}],
    )
    rest = Shipment.objects.get(split_from=parcel)
    assert rest.kind == ShipmentKind.REPLACEMENT  # not an order parcel: it does not wait for 待发货
    shipment_ship(shipment=rest, actor=cangchu, carrier="shunfeng", tracking_no="SF7777777778")
    assert stock(shirt, hangzhou) == (6, 0, 0)
