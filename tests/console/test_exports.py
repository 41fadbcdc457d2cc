"""Excel export of the filtered lists, personal data masked for roles without view_customer_pii."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, User
from openpyxl import load_workbook

from orders.events import Actor
from orders.services import order_pay
from tests.conftest import force_login_verified
from tests.fulfillment.conftest import order_for

pytestmark = pytest.mark.django_db


def staff_in(group: str) -> User:
    user = User.objects.create_user(f"x-{group}", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return User.objects.get(pk=user.pk)


def export_rows(client, url: str, **query) -> list[list]:
    """POST the export form the way the admin's 导出 page does, for XLSX (format 0)."""
    page = client.get(url, query)
    assert page.status_code == 200
    form = page.context["form"]
    columns = [name for name in form.fields if name not in ("resource", "format", "export_items")]
    data = {"format": "0", **{name: "on" for name in columns}}
    answer = client.post(url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""), data)
    assert answer.status_code == 200, answer.content[:300]
    sheet = load_workbook(io.BytesIO(answer.content)).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def test_the_order_export_follows_the_filter_and_masks_for_warehouse(client, hangzhou, stocked):
    shirt = stocked({hangzhou: 10})
    paid = order_for([(shirt, 1)], mobile="13800138000")
    order_pay(order=paid, amount=paid.payable_total, actor=Actor.gateway("alipay"))
    order_for([(shirt, 1)], mobile="13900139000")  # unpaid: filtered out below

    force_login_verified(client, staff_in("仓储"))
    rows = export_rows(client, "/admin/orders/order/export/", status__exact="awaiting_shipment")
    header, *body = rows
    assert "订单号" in header and "顾客手机" in header
    assert len(body) == 1
    mobile = body[0][header.index("顾客手机")]
    assert mobile == "138****8000"
    assert "13800138000" not in str(rows) and "文三路100号" not in str(rows)


def test_customer_service_exports_full_numbers(client, hangzhou, stocked):
    shirt = stocked({hangzhou: 10})
    order_for([(shirt, 1)], mobile="13800138000")
    force_login_verified(client, staff_in("客服"))
    header, *body = export_rows(client, "/admin/orders/order/export/")
    assert body[0][header.index("顾客手机")] == "13800138000"


def test_the_export_button_sits_beside_the_lists_own_buttons(admin_client):
    orders = admin_client.get("/admin/orders/order/").content.decode()
    assert 'class="export_link"' in orders and 'id="manual-order-add"' in orders
    aftersales = admin_client.get("/admin/aftersales/aftersale/").content.decode()
    assert 'class="export_link"' in aftersales and 'id="open-aftersale"' in aftersales
