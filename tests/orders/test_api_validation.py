"""The storefront API refuses bad input with a 400 naming the field, and creates nothing.

Also: authentication, storefront isolation, and the cancel / confirm-receipt / address endpoints.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from inventory.models import Reservation, StockLevel
from orders import services
from orders.models import Coupon, Order, OrderEvent, OrderStatus, Storefront, StorefrontAPIKey
from orders.services import Actor
from tests.conftest import client_for
from tests.fulfillment.factories import ship_whole_order

pytestmark = pytest.mark.django_db

URL = "/api/v1/orders/"
MISSING = object()


def state() -> dict:
    """What a refused request must not change."""
    return {
        "orders": Order.objects.count(),
        "events": OrderEvent.objects.count(),
        "stock": list(StockLevel.objects.order_by("id").values_list("id", "on_hand", "reserved")),
        "reservations": Reservation.objects.count(),
        "coupons": list(Coupon.objects.order_by("id").values_list("id", "used_count")),
    }


def change(body: dict, path: str, value) -> dict:
    """Set (or, with MISSING, remove) a dotted path such as "customer.mobile" or "lines.0.quantity"."""
    *parents, last = path.split(".")
    target = body
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key = int(last) if last.isdigit() else last
    if value is MISSING:
        del target[key]
    else:
        target[key] = value
    return body


def assert_refused(response, field: str, *, code: str = "validation_error", status: int = 400) -> dict:
    assert response.status_code == status, response.content
    payload = response.json()
    assert payload["code"] == code, payload
    assert payload["message"]
    assert field in payload.get("fields", {}), payload
    messages = payload["fields"][field]
    assert messages and all(isinstance(m, str) and m for m in messages)
    return payload


@pytest.fixture
def post(api):
    def send(body):
        return api.post(URL, body, format="json")

    return send


# --- shape validation ------------------------------------------------------------


def case(path: str, value, field: str, label: str = ""):
    """One bad value at `path` in the body, expected to be reported under `field`."""
    shown = label or ("MISSING" if value is MISSING else repr(value))
    return pytest.param(path, value, field, id=f"{path}={shown}")


INVALID = [
    # customer
    case("customer.mobile", "12345678901", "customer.mobile"),
    case("customer.mobile", "1380013800", "customer.mobile"),
    case("customer.mobile", "138001380001", "customer.mobile"),
    case("customer.mobile", "+8613800138000", "customer.mobile"),
    case("customer.mobile", "", "customer.mobile"),
    case("customer.mobile", MISSING, "customer.mobile"),
    case("customer.mobile", "138００１３８０００", "customer.mobile", "fullwidth-digits"),
    case("customer.email", "not-an-email", "customer.email"),
    case("customer.name", MISSING, "customer.name"),
    # shipping address
    case("shipping_address.phone", "12345", "shipping_address.phone"),
    case("shipping_address.phone", "010-123", "shipping_address.phone"),
    case("shipping_address.phone", MISSING, "shipping_address.phone"),
    case("shipping_address.phone", "0571-８７６５４３２１", "shipping_address.phone", "fullwidth-digits"),
    case("shipping_address.receiver", MISSING, "shipping_address.receiver"),
    case("shipping_address.receiver", "   ", "shipping_address.receiver"),
    case("shipping_address.province", MISSING, "shipping_address.province"),
    case("shipping_address.province", "", "shipping_address.province"),
    case("shipping_address.city", MISSING, "shipping_address.city"),
    case("shipping_address.city", "", "shipping_address.city"),
    case("shipping_address.district", MISSING, "shipping_address.district"),
    case("shipping_address.district", "  ", "shipping_address.district"),
    case("shipping_address.detail", MISSING, "shipping_address.detail"),
    case("shipping_address.detail", "", "shipping_address.detail"),
    case("shipping_address.postcode", "31000", "shipping_address.postcode"),
    case("shipping_address.postcode", "3100001", "shipping_address.postcode"),
    case("shipping_address.postcode", "31000a", "shipping_address.postcode"),
    case("shipping_address.postcode", "３１００００", "shipping_address.postcode", "fullwidth-digits"),
    case("shipping_address", MISSING, "shipping_address"),
    # lines
    case("lines.0.quantity", 0, "lines[0].quantity"),
    case("lines.0.quantity", -1, "lines[0].quantity"),
    case("lines.0.quantity", 1000, "lines[0].quantity"),
    case("lines.0.quantity", "three", "lines[0].quantity"),
    case("lines.0.quantity", MISSING, "lines[0].quantity"),
    case("lines.0.sku", "NO-SUCH-SKU", "lines[0].sku"),
    case("lines.0.sku", "", "lines[0].sku"),
    case("lines", [], "lines"),
    case("lines", MISSING, "lines"),
    # order
    case("external_id", MISSING, "external_id"),
    case("external_id", "", "external_id"),
    case("payment_method", "paypal", "payment_method"),
    case("payment_method", MISSING, "payment_method"),
    case("order_type", "flash_sale", "order_type"),
    case("remark", "备" * (settings.OMS_REMARK_MAX_LENGTH + 1), "remark", "too-long"),
    # JSON types: a string field takes a string, an integer field an integer (found by schemathesis)
    case("customer.mobile", 13800138000, "customer.mobile"),
    case("shipping_address.postcode", 310000, "shipping_address.postcode"),
    case("shipping_address.city", -5.4e-245, "shipping_address.city"),
    case("external_id", 10001, "external_id"),
    case("lines.0.quantity", "3", "lines[0].quantity"),
    case("lines.0.quantity", True, "lines[0].quantity"),
    case("lines.0.quantity", 2.5, "lines[0].quantity"),
]


@pytest.mark.parametrize(("path", "value", "field"), INVALID)
def test_invalid_field_is_refused_and_creates_nothing(path, value, field, post, order_body, tshirt):
    before = state()

    response = post(change(order_body, path, value))

    assert_refused(response, field)
    assert state() == before


def test_the_unchanged_body_is_accepted(post, order_body, tshirt):
    """The control for the cases above: each of them differs from this body in one place."""
    before = state()["orders"]
    order_body["remark"] = "备" * settings.OMS_REMARK_MAX_LENGTH  # the limit itself is fine
    order_body["shipping_address"]["phone"] = "0571-87654321"  # so is a landline

    response = post(order_body)

    assert response.status_code == 201, response.content
    assert Order.objects.count() == before + 1


def test_inactive_sku_is_refused(post, order_body, tshirt, make_sku):
    make_sku("OLD-MUG", "30.00", 50, active=False)
    order_body["lines"] = [{"sku": "OLD-MUG", "quantity": 1}]
    before = state()

    assert_refused(post(order_body), "lines[0].sku")
    assert state() == before


def test_repeated_sku_in_one_order_is_refused(post, order_body, tshirt, make_sku):
    make_sku("MUG", "30.00", 50)
    order_body["lines"] = [
        {"sku": tshirt.code, "quantity": 1},
        {"sku": "MUG", "quantity": 1},
        {"sku": tshirt.code, "quantity": 2},
    ]
    before = state()

    payload = assert_refused(post(order_body), "lines[2].sku")
    assert set(payload["fields"]) == {"lines[2].sku"}
    assert state() == before


def test_repeated_sku_on_the_second_line_is_refused(post, order_body, tshirt):
    order_body["lines"] = [{"sku": tshirt.code, "quantity": 1}, {"sku": tshirt.code, "quantity": 2}]
    before = state()

    assert_refused(post(order_body), "lines[1].sku")
    assert state() == before


def test_payment_method_the_storefront_does_not_allow_is_refused(post, order_body, tshirt, storefront):
    storefront.allowed_payment_methods = ["alipay"]
    storefront.save()
    order_body["payment_method"] = "cod"
    before = state()

    assert_refused(post(order_body), "payment_method")
    assert state() == before


def test_unknown_coupon_is_refused(post, order_body, tshirt):
    order_body["coupon_code"] = "NO-SUCH-COUPON"
    before = state()

    assert_refused(post(order_body), "coupon_code", code="coupon_not_applicable")
    assert state() == before


def test_malformed_json_is_refused(api, tshirt):
    before = state()

    response = api.post(URL, data='{"external_id": "WEB-1", "lines": [', content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "parse_error"
    assert state() == before


def test_request_without_an_api_key_is_unauthorised(order_body, tshirt):
    before = state()

    response = APIClient().post(URL, order_body, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert state() == before


@pytest.mark.parametrize("kind", ["garbage", "right-prefix-wrong-secret", "revoked"])
def test_request_with_a_wrong_api_key_is_unauthorised(kind, order_body, tshirt, storefront):
    key_obj, key = StorefrontAPIKey.objects.create_key(name="k", storefront=storefront)
    if kind == "garbage":
        key = "not-a-key"
    elif kind == "right-prefix-wrong-secret":
        key = f"{key_obj.prefix}.{'x' * 32}"
    else:
        key_obj.revoked = True
        key_obj.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    before = state()

    response = client.post(URL, order_body, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert state() == before


# --- the order endpoints ---------------------------------------------------------


def url(order_no: str, action: str = "") -> str:
    return f"{URL}{order_no}/{action + '/' if action else ''}"


def paid_and_shipped(order_no: str) -> Order:
    order = Order.objects.get(order_no=order_no)
    services.order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("alipay"))
    ship_whole_order(order, actor=Actor.system("test"))
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    return order


def test_another_storefronts_order_is_not_found(create_order):
    order_no = create_order()["order_no"]
    other = client_for(Storefront.objects.create(code="app", name="App"))
    before = state()

    assert other.get(url(order_no)).status_code == 404
    assert other.post(url(order_no, "cancel"), {"reason": "changed_mind"}, format="json").status_code == 404
    assert other.post(url(order_no, "confirm-receipt")).status_code == 404
    assert other.patch(url(order_no, "address"), {"detail": "文一路1号"}, format="json").status_code == 404

    assert state() == before
    assert Order.objects.get(order_no=order_no).status == OrderStatus.PENDING_PAYMENT


def test_own_order_is_found(api, create_order):
    order_no = create_order()["order_no"]

    response = api.get(url(order_no))

    assert response.status_code == 200
    assert response.json()["order_no"] == order_no


def test_cancel_with_a_customer_reason(api, create_order):
    order_no = create_order()["order_no"]

    response = api.post(url(order_no, "cancel"), {"reason": "changed_mind"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancel_reason"] == "changed_mind"
    order = Order.objects.get(order_no=order_no)
    assert order.status == OrderStatus.CANCELLED
    assert StockLevel.objects.get().reserved == 0
    event = order.events.get(type="cancel")
    assert (event.actor_kind, event.actor_label) == ("storefront", "web")


@pytest.mark.parametrize("reason", ["timeout", "risk", "out_of_stock", "bored", ""])
def test_cancel_with_a_reason_the_customer_may_not_give(reason, api, create_order):
    order_no = create_order()["order_no"]
    before = state()

    assert_refused(api.post(url(order_no, "cancel"), {"reason": reason}, format="json"), "reason")

    assert state() == before
    assert Order.objects.get(order_no=order_no).status == OrderStatus.PENDING_PAYMENT


def test_confirm_receipt_of_a_pending_order_is_a_conflict(api, create_order):
    order_no = create_order()["order_no"]
    before = state()

    response = api.post(url(order_no, "confirm-receipt"))

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert state() == before
    assert Order.objects.get(order_no=order_no).status == OrderStatus.PENDING_PAYMENT


def test_confirm_receipt_of_a_shipped_order(api, create_order):
    order = paid_and_shipped(create_order()["order_no"])

    response = api.post(url(order.order_no, "confirm-receipt"))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "completed"


def test_address_change_before_shipment(api, create_order):
    order_no = create_order()["order_no"]

    response = api.patch(
        url(order_no, "address"),
        {"phone": "13900139000", "detail": "文一路1号"},
        format="json",
    )

    assert response.status_code == 200, response.content
    address = response.json()["shipping_address"]
    assert address["phone"] == "13900139000"
    assert address["detail"] == "文一路1号"
    assert address["postcode"] == "310000"  # fields not sent keep their values
    assert address["province"] == "浙江省"
    event = Order.objects.get(order_no=order_no).events.get(type=OrderEvent.Type.ADDRESS_CHANGED)
    assert event.data["old"] == {"receiver_phone": "13800138000", "address_detail": "文三路100号"}
    assert event.data["new"] == {"receiver_phone": "13900139000", "address_detail": "文一路1号"}
    assert (event.actor_kind, event.actor_label) == ("storefront", "web")


def test_address_change_after_shipment_is_a_conflict(api, create_order):
    order = paid_and_shipped(create_order()["order_no"])
    before = state()

    response = api.patch(url(order.order_no, "address"), {"detail": "文一路1号"}, format="json")

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "invalid_transition"
    assert Order.objects.get(pk=order.pk).address_detail == "文三路100号"
    assert state() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "12345"}, "phone"),
        ({"phone": "13900139000", "postcode": "1234"}, "postcode"),
        ({"city": ""}, "city"),
    ],
)
def test_address_change_with_invalid_input_is_refused(body, field, api, create_order):
    order_no = create_order()["order_no"]
    before = state()

    assert_refused(api.patch(url(order_no, "address"), body, format="json"), field)

    order = Order.objects.get(order_no=order_no)
    assert (order.receiver_phone, order.postcode, order.city) == ("13800138000", "310000", "杭州市")
    assert state() == before


@pytest.mark.parametrize(("method", "suffix"), [("get", ""), ("get", "messages/"), ("post", "confirm-receipt/")])
def test_an_order_number_with_a_nul_is_not_found_not_a_server_error(api, method, suffix):
    """PostgreSQL refuses NUL in text, so the lookup must not get that far (it was a 500)."""
    response = getattr(api, method)(f"/api/v1/orders/2026%00/{suffix}")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
