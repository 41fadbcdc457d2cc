"""The factories build what the API and the services would: tests built on them test the real thing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from inventory.models import StockLevel
from orders.api.serializers import OrderCreateSerializer
from orders.models import OrderEvent
from tests.orders.factories import OrderFactory, OrderInputFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="default-body"),
        pytest.param({"coupon_code": "SAVE10", "expected_total": "210.00", "order_type": "promo"}, id="optional-keys"),
    ],
)
def test_order_input_from_a_body_is_what_the_api_makes_of_it(changes, order_body):
    order_body.update(changes)
    serializer = OrderCreateSerializer(data=order_body)
    assert serializer.is_valid(), serializer.errors

    payload = OrderInputFactory(body=order_body)

    assert payload == serializer.to_input()
    assert payload.fingerprint() == serializer.to_input().fingerprint()  # so a replay is recognised


def test_order_input_leaves_the_body_it_was_given_alone(order_body):
    payload = OrderInputFactory(body=order_body)
    payload.lines[0]["quantity"] = 99
    payload.customer["mobile"] = "13900139000"

    assert order_body["lines"][0]["quantity"] == 3
    assert order_body["customer"]["mobile"] == "13800138000"


def test_order_factory_creates_through_order_create(storefront, tshirt):
    order = OrderFactory(storefront=storefront)

    assert (order.status, order.payable_total) == ("pending_payment", Decimal("210.00"))
    assert order.events.filter(type=OrderEvent.Type.CREATED).count() == 1
    assert StockLevel.objects.get(sku=tshirt).reserved == 3


def test_order_factory_refuses_to_pass_off_a_replay_as_a_new_order(storefront, tshirt):
    payload = OrderInputFactory()
    OrderFactory(storefront=storefront, payload=payload)

    with pytest.raises(AssertionError, match="already an order"):
        OrderFactory(storefront=storefront, payload=payload)
