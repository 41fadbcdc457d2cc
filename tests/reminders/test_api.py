"""GET /api/v1/orders/{order_no}/messages/: the storefront reads what was sent about its own orders."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from orders.models import Storefront
from orders.services import Actor
from reminders.services import reminders_notify_closed, reminders_send_due
from workflows.cancellation import order_cancel

from ..conftest import client_for
from .conftest import at

pytestmark = pytest.mark.django_db


def test_messages_of_own_order(api, sms, only_rules, clock, make_order):
    only_rules("order_confirmation", "closed_notice")
    clock(at(3, 10, 10, 0))
    order = make_order()
    reminders_send_due()
    clock(at(3, 11, 10, 1))
    order_cancel(order=order, actor=Actor.system("close_expired_orders"), reason="timeout")
    reminders_notify_closed(order_ids=[order.pk])
    reminders_send_due()

    response = api.get(f"/api/v1/orders/{order.order_no}/messages/")
    assert response.status_code == 200
    body = response.json()
    assert [(m["channel"], m["purpose"]) for m in body] == [("sms", "confirmation"), ("in_app", "closed_notice")]
    assert body[0]["sent_at"] == "2026-03-10T10:00:00+08:00"
    assert order.order_no in body[1]["text"] and "已自动关闭" in body[1]["text"]


def test_no_messages_is_an_empty_list(api, make_order):
    order = make_order()
    response = api.get(f"/api/v1/orders/{order.order_no}/messages/")
    assert (response.status_code, response.json()) == (200, [])


def test_another_storefronts_order_is_404(make_order):
    order = make_order()
    other = client_for(Storefront.objects.create(code="app", name="App"))
    response = other.get(f"/api/v1/orders/{order.order_no}/messages/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert other.get("/api/v1/orders/NOPE/messages/").status_code == 404


def test_same_authentication_as_the_other_endpoints(make_order):
    order = make_order()
    assert APIClient().get(f"/api/v1/orders/{order.order_no}/messages/").status_code == 401


def test_listed_in_the_openapi_schema(api, client):
    schema = client.get("/api/schema/").content.decode()
    assert "/api/v1/orders/{order_no}/messages/" in schema
