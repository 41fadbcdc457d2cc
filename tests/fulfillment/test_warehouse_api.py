"""The warehouse API (a key per warehouse) and the storefront's view of an order's parcels, over HTTP."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from fulfillment.models import Shipment, ShipmentStatus, TrackingEvent, WarehouseAPIKey
from inventory.models import StockLevel
from orders.models import FulfillmentStatus, OrderEvent, OrderStatus
from tests.conftest import client_for
from tests.orders.factories import StorefrontFactory

from .conftest import allocated, order_for

pytestmark = pytest.mark.django_db

SHIP = "/api/v1/warehouse/shipments/{}/ship/"
LIST = "/api/v1/warehouse/shipments/"


def wms(warehouse) -> APIClient:
    _, key = WarehouseAPIKey.objects.create_key(name="test", warehouse=warehouse)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def parcel(hangzhou, stocked) -> Shipment:
    shirt = stocked({hangzhou: 10}, code="SHIRT")
    mug = stocked({hangzhou: 10}, code="MUG")
    (shipment,) = allocated(order_for([(shirt, 2), (mug, 1)]))
    return shipment


def on_hand(code: str) -> int:
    return StockLevel.objects.get(sku__code=code).on_hand


def test_list_shows_only_this_warehouses_parcels_of_a_status(hangzhou, guangzhou, stocked):
    shirt = stocked({hangzhou: 5, guangzhou: 5}, code="SHIRT")
    (hz,) = allocated(order_for([(shirt, 1)], province="浙江省"))
    (gz,) = allocated(order_for([(shirt, 1)], province="广东省", mobile="13900139000"))
    (hz_shipped,) = allocated(order_for([(shirt, 1)], province="浙江省", mobile="13700137000"))
    client = wms(hangzhou)
    client.post(SHIP.format(hz_shipped.shipment_no), {"carrier": "shunfeng", "tracking_no": "SF1234567890"}, "json")

    body = client.get(LIST, {"status": "pending"}).json()
    assert [s["shipment_no"] for s in body["results"]] == [hz.shipment_no]
    assert body["count"] == 1
    (item,) = body["results"]
    assert item["order_nos"] == [hz.lines.get().order.order_no]
    assert item["warehouse"] == "HZ01" and item["status"] == "pending" and item["status_display"] == "待拣货"
    assert item["lines"] == [{"sku": "SHIRT", "quantity": 1}]

    every = client.get(LIST).json()
    assert {s["shipment_no"] for s in every["results"]} == {hz.shipment_no, hz_shipped.shipment_no}
    assert gz.shipment_no not in str(wms(guangzhou).get(LIST, {"status": "shipped"}).json())


def test_list_pages_and_costs_the_same_queries_for_many(hangzhou, stocked, django_assert_max_num_queries):
    shirt = stocked({hangzhou: 50})
    for n in range(6):
        allocated(order_for([(shirt, 1)], mobile=f"1380013800{n}"))
    client = wms(hangzhou)
    with django_assert_max_num_queries(6):  # key, count, shipments, lines, tracking (+ savepoint slack)
        page = client.get(LIST, {"status": "pending", "limit": 4}).json()
    assert page["count"] == 6 and len(page["results"]) == 4 and page["next"]
    rest = client.get(page["next"]).json()
    assert len(rest["results"]) == 2


@pytest.mark.parametrize(
    "query",
    [{"status": "lost"}, {"status": ""}, {"limit": "abc"}, {"limit": ""}, {"offset": "-1"}, {"stauts": "pending"}],
)
def test_list_refuses_bad_parameters_naming_them(hangzhou, query):
    response = wms(hangzhou).get(LIST, query)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert set(response.json()["fields"]) == set(query)


def test_no_key_or_a_storefront_key_is_refused(hangzhou, parcel, storefront):
    assert APIClient().get(LIST).status_code == 401
    assert client_for(storefront).get(LIST).status_code == 401
    assert wms(hangzhou).get("/api/v1/orders/X/").status_code == 401  # and the other way round


def test_ship_answers_the_shipment_and_repeats_are_200(hangzhou, parcel):
    client = wms(hangzhou)
    order = parcel.lines.first().order
    response = client.post(
        SHIP.format(parcel.shipment_no), {"carrier": "shunfeng", "tracking_no": "sf1234567890"}, "json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["carrier"], body["tracking_no"]) == ("shipped", "shunfeng", "SF1234567890")
    assert body["order_nos"] == [order.order_no] and body["shipped_at"]
    again = client.post(SHIP.format(parcel.shipment_no), {"carrier": "shunfeng", "tracking_no": "SF1234567890"}, "json")
    assert again.status_code == 200 and again.json() == body
    assert on_hand("SHIRT") == 8 and on_hand("MUG") == 9
    event = order.events.get(type=OrderEvent.Type.SHIPMENT_SHIPPED)
    assert event.actor_kind == "system" and event.actor_label == "wms:HZ01"
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED


def test_another_tracking_number_for_a_shipped_parcel_is_409(hangzhou, parcel):
    client = wms(hangzhou)
    client.post(SHIP.format(parcel.shipment_no), {"carrier": "shunfeng", "tracking_no": "SF1234567890"}, "json")
    response = client.post(
        SHIP.format(parcel.shipment_no), {"carrier": "shunfeng", "tracking_no": "SF1234567899"}, "json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    parcel.refresh_from_db()
    assert parcel.tracking_no == "SF1234567890"


def test_another_warehouses_parcel_is_404(hangzhou, guangzhou, parcel):
    response = wms(guangzhou).post(
        SHIP.format(parcel.shipment_no), {"carrier": "shunfeng", "tracking_no": "SF1234567890"}, "json"
    )
    assert response.status_code == 404
    assert wms(guangzhou).post(SHIP.format("NOPE"), {"carrier": "shunfeng", "tracking_no": "SF1"}, "json").status_code
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.PENDING


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"carrier": "x", "tracking_no": "SF1234567890"}, "carrier"),
        ({"carrier": "shunfeng", "tracking_no": "1"}, "tracking_no"),
        ({"carrier": "shunfeng", "tracking_no": 1234567890}, "tracking_no"),
        ({"carrier": "yuantong", "tracking_no": "SF1234567890"}, "tracking_no"),
        ({"carrier": "shunfeng"}, "tracking_no"),
        ({"carrier": "shunfeng", "tracking_no": "SF1234567890", "lines": []}, "lines"),
        (
            {"carrier": "shunfeng", "tracking_no": "SF1234567890", "lines": [{"sku": "HAT", "quantity": 1}]},
            "lines[0].sku",
        ),
        (
            {"carrier": "shunfeng", "tracking_no": "SF1234567890", "lines": [{"sku": "SHIRT", "quantity": 3}]},
            "lines[0].quantity",
        ),
        (
            {"carrier": "shunfeng", "tracking_no": "SF1234567890", "lines": [{"sku": "SHIRT", "quantity": "1"}]},
            "lines[0].quantity",
        ),
    ],
)
def test_bad_input_is_400_naming_the_field(hangzhou, parcel, body, field):
    response = wms(hangzhou).post(SHIP.format(parcel.shipment_no), body, "json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["fields"]
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.PENDING
    assert on_hand("SHIRT") == 10


def test_ship_some_lines_leaves_the_rest_pending(hangzhou, parcel):
    client = wms(hangzhou)
    response = client.post(
        SHIP.format(parcel.shipment_no),
        {"carrier": "shunfeng", "tracking_no": "SF1234567890", "lines": [{"sku": "SHIRT", "quantity": 1}]},
        "json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["lines"] == [{"sku": "SHIRT", "quantity": 1}]
    pending = client.get(LIST, {"status": "pending"}).json()["results"]
    assert [sorted((ln["sku"], ln["quantity"]) for ln in s["lines"]) for s in pending] == [[("MUG", 1), ("SHIRT", 1)]]
    order = parcel.lines.first().order
    order.refresh_from_db()
    assert order.fulfillment_status == FulfillmentStatus.PARTIALLY_SHIPPED
    assert on_hand("SHIRT") == 9 and on_hand("MUG") == 10


def test_create_warehouse_key_prints_a_working_key_once(hangzhou, capsys):
    call_command("create_warehouse_key", "HZ01")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get(LIST).status_code == 200
    assert key not in str(list(WarehouseAPIKey.objects.values_list("hashed_key", flat=True)))
    with pytest.raises(CommandError, match="HZ01"):
        call_command("create_warehouse_key", "NOPE")


def test_a_key_of_an_inactive_warehouse_is_refused(hangzhou):
    client = wms(hangzhou)
    hangzhou.active = False
    hangzhou.save()
    assert client.get(LIST).status_code == 401


# --- storefront ---------------------------------------------------------------------


def test_order_json_gains_fulfillment_status_and_shipments(hangzhou, parcel):
    order = parcel.lines.first().order
    storefront_api = client_for(order.storefront)
    wms(hangzhou).post(
        SHIP.format(parcel.shipment_no),
        {"carrier": "shunfeng", "tracking_no": "SF1234567890", "lines": [{"sku": "SHIRT", "quantity": 2}]},
        "json",
    )
    TrackingEvent.objects.create(
        shipment=parcel, time=timezone.now(), state="in_transit", context="【杭州】已发出", area="杭州"
    )
    body = storefront_api.get(f"/api/v1/orders/{order.order_no}/").json()
    assert body["fulfillment_status"] == "partially_shipped"
    shipped, rest = body["shipments"]
    assert shipped == {
        "shipment_no": parcel.shipment_no,
        "status": "shipped",
        "status_display": "已发货",
        "warehouse": "HZ01",
        "carrier": "shunfeng",
        "tracking_no": "SF1234567890",
        "shipped_at": shipped["shipped_at"],
        "delivered_at": None,
        "lines": [{"sku": "SHIRT", "quantity": 2}],
        "tracking": [{"time": shipped["tracking"][0]["time"], "state": "in_transit", "context": "【杭州】已发出"}],
    }
    assert rest["status"] == "pending" and rest["lines"] == [{"sku": "MUG", "quantity": 1}]
    listed = storefront_api.get(f"/api/v1/orders/{order.order_no}/shipments/")
    assert listed.status_code == 200
    assert listed.json() == body["shipments"]


def test_an_unpaid_order_costs_no_shipment_query(api, create_order):
    order_no = create_order()["order_no"]
    with CaptureQueriesContext(connection) as captured:
        body = api.get(f"/api/v1/orders/{order_no}/").json()
    assert body["fulfillment_status"] == "unfulfilled" and body["shipments"] == []
    assert not [q for q in captured.captured_queries if "fulfillment_shipment" in q["sql"]]


def test_another_storefronts_order_shipments_are_404(parcel):
    order = parcel.lines.first().order
    assert (
        client_for(StorefrontFactory(code="app", name="App"))
        .get(f"/api/v1/orders/{order.order_no}/shipments/")
        .status_code
        == 404
    )
