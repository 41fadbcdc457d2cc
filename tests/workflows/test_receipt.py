"""自动确认收货 waits while a parcel of the order has an open logistics case (拒签, 退回, ...)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from fulfillment.models import LogisticsException, Shipment
from fulfillment.services import logistics_exception_open, logistics_exception_resolve, shipment_ship
from orders.events import Actor
from orders.models import Order
from orders.tasks import confirm_receipt_overdue
from tests.fulfillment.conftest import SYSTEM, allocated, order_for
from workflows.receipt import order_confirm_receipt_due

pytestmark = pytest.mark.django_db


def shipped_order(sku, mobile: str) -> tuple[Order, Shipment]:
    order = order_for([(sku, 1)], mobile=mobile)
    (parcel,) = allocated(order)
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no=f"SF1{mobile}")
    order.refresh_from_db()
    return order, parcel


def test_an_open_logistics_case_holds_the_receipt_confirmation_until_it_is_resolved(hangzhou, stocked, staff, settings):
    settings.OMS_AUTO_CONFIRM_DAYS_AFTER_SHIPMENT = 10
    sku = stocked({hangzhou: 10})
    refused, refused_parcel = shipped_order(sku, "13800000001")
    fine, _parcel = shipped_order(sku, "13800000002")
    resolved, resolved_parcel = shipped_order(sku, "13800000003")
    case = logistics_exception_open(shipment=refused_parcel, kind=LogisticsException.Kind.REFUSED, actor=SYSTEM)
    earlier = logistics_exception_open(shipment=resolved_parcel, kind=LogisticsException.Kind.STALE, actor=SYSTEM)
    kefu = staff("客服")
    logistics_exception_resolve(case=earlier, actor=Actor.staff(kefu), outcome="contact_customer", note="顾客已收到")

    later = timezone.now() + timedelta(days=10, minutes=1)
    with time_machine.travel(later):
        assert order_confirm_receipt_due() == 2  # the refused parcel's order waits
    statuses = dict(Order.objects.values_list("pk", "status"))
    assert (statuses[refused.pk], statuses[fine.pk], statuses[resolved.pk]) == ("shipped", "completed", "completed")

    logistics_exception_resolve(case=case, actor=Actor.staff(kefu), outcome="contact_customer", note="顾客改为签收")
    with time_machine.travel(later + timedelta(hours=1)):
        assert confirm_receipt_overdue() == 1  # the beat task takes the same path
    assert Order.objects.get(pk=refused.pk).status == "completed"
