"""Customers' personal data is masked for staff, and revealing it is explicit and logged."""

from __future__ import annotations

import logging
import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from orders.models import Order, PiiAccess
from orders.pii import mask_address, mask_mobile
from tests.conftest import force_login_verified

MOBILE = "13800138000"  # the default order body's customer and receiver


def login(role: str, django_user_model) -> tuple[Client, object]:
    user = django_user_model.objects.create_user(f"user-{role}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    force_login_verified(client, user)  # 主管 pass two-factor first
    return client, user


@pytest.fixture
def order(create_order):
    return Order.objects.get(order_no=create_order()["order_no"])


def test_masks():
    assert mask_mobile("13800138000") == "138****8000"
    assert mask_mobile("12345") == "***45"
    assert mask_address("文三路100号") == "文三****"


@pytest.mark.parametrize("role", ["仓储", "客服"])
def test_the_order_list_and_page_show_no_full_mobile(role, order, django_user_model):
    client, _ = login(role, django_user_model)
    listing = client.get("/admin/orders/order/").content.decode()
    assert order.order_no in listing and MOBILE not in listing and "138****8000" in listing
    found = client.get(f"/admin/orders/order/?q={MOBILE}").content.decode()
    shown = re.sub(rf'(q=|q%3D|value="){MOBILE}', "", found)  # the page echoes what was typed
    assert order.order_no in shown and MOBILE not in shown  # search by the full number still works
    detail = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert MOBILE not in detail and "文三路100号" not in detail and "文三****" in detail


def test_customer_service_reveals_an_order_and_it_is_logged(order, django_user_model):
    client, user = login("客服", django_user_model)
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert 'id="reveal-pii"' in page
    response = client.post(f"/admin/orders/order/{order.pk}/reveal-pii/", follow=True)
    shown = response.content.decode()
    assert MOBILE in shown and "文三路100号" in shown
    assert list(PiiAccess.objects.values_list("user", "order")) == [(user.pk, order.pk)]
    assert MOBILE not in client.get("/admin/orders/order/").content.decode()  # lists stay masked


def test_warehouse_staff_cannot_reveal(order, django_user_model):
    client, _ = login("仓储", django_user_model)
    assert 'id="reveal-pii"' not in client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    response = client.post(f"/admin/orders/order/{order.pk}/reveal-pii/", follow=True)
    assert MOBILE not in response.content.decode()
    assert "您没有执行此操作的权限" in response.content.decode()
    assert not PiiAccess.objects.exists()


def test_only_supervisors_read_the_access_log(order, django_user_model):
    supervisor, _ = login("主管", django_user_model)
    assert supervisor.get("/admin/orders/piiaccess/").status_code == 200
    clerk, _ = login("客服", django_user_model)
    refused = clerk.get("/admin/orders/piiaccess/")
    assert refused.status_code == 403
    assert "没有权限" in refused.content.decode()  # a Chinese page, not a bare "403 Forbidden"


def test_a_refused_page_logs_one_line_without_a_traceback(order, django_user_model, caplog):
    from oms.logfilters import RefusalsWithoutTraceback

    clerk, _ = login("仓储", django_user_model)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert clerk.get("/admin/payments/payment/").status_code == 403
    records = [r for r in caplog.records if getattr(r, "status_code", None) == 403]
    assert records
    for record in records:
        assert RefusalsWithoutTraceback().filter(record)
        assert record.exc_info is None


def test_the_order_page_hides_buttons_the_role_may_not_press(create_order, django_user_model):
    order = Order.objects.get(order_no=create_order(payment_method="cod")["order_no"])
    warehouse, _ = login("仓储", django_user_model)
    page = warehouse.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "取消订单" not in page and "货到付款核实" not in page
    service, _ = login("客服", django_user_model)
    page = service.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "取消订单" in page and "货到付款核实" in page
