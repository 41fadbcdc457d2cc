"""Ship confirmations racing for one parcel, for real: threads against PostgreSQL, each with its own
connection, through the warehouse API as scanners and the WMS would send them."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from fulfillment.models import Shipment, ShipmentStatus, TrackingSubscription, WarehouseAPIKey
from inventory.models import Reservation, StockLevel
from orders.models import OrderEvent, OrderStatus
from tests.threads import run_in_threads

from .conftest import allocated, order_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 10
RETRIED_NUMBER = "SF1000000001"


def test_ten_concurrent_ship_confirmations_ship_the_parcel_once(hangzhou, stocked):
    shirt = stocked({hangzhou: 10}, code="SHIRT")
    order = order_for([(shirt, 3)])
    (parcel,) = allocated(order)
    _, key = WarehouseAPIKey.objects.create_key(name="race", warehouse=hangzhou)
    # Half the scanners send one number (a retried confirmation), the others each a different one.
    numbers = [RETRIED_NUMBER if i % 2 == 0 else f"SF20000000{i:02d}" for i in range(THREADS)]

    def confirm(i: int):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        response = client.post(
            f"/api/v1/warehouse/shipments/{parcel.shipment_no}/ship/",
            {"carrier": "shunfeng", "tracking_no": numbers[i]},
            format="json",
        )
        return response.status_code, response.json()

    results = run_in_threads(THREADS, confirm)

    assert all(isinstance(r, tuple) for r in results), results
    shipment = Shipment.objects.get(pk=parcel.pk)
    assert shipment.status == ShipmentStatus.SHIPPED
    winner = shipment.tracking_no
    for number, (status, body) in zip(numbers, results, strict=True):
        if number == winner:
            assert status == 200 and body["tracking_no"] == winner and body["status"] == "shipped"
        else:
            assert status == 409 and body["code"] == "invalid_transition", body
    assert sum(status == 200 for status, _ in results) == numbers.count(winner)

    level = StockLevel.objects.get(sku=shirt, warehouse=hangzhou)
    assert (level.on_hand, level.reserved) == (7, 0)  # consumed once
    assert list(Reservation.objects.filter(order_line__order=order).values_list("status", "quantity")) == [
        ("consumed", 3)
    ]
    assert order.events.filter(type=OrderEvent.Type.SHIPMENT_SHIPPED).count() == 1
    assert TrackingSubscription.objects.filter(shipment=shipment).count() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    assert order.events.filter(to_status=OrderStatus.SHIPPED).count() == 1
