"""The one default order request, and orders built from it through orders.services.

- OrderBodyFactory: the JSON body a storefront posts to /api/v1/orders/ (a plain dict).
- OrderInputFactory: the same request after shape validation, as order_create takes it.
  It is derived from a body (`body=...`, by default a fresh OrderBodyFactory()), so the two
  never drift apart; any OrderInput field can still be overridden directly.
- OrderFactory: an order created by the real order_create (pricing, stock reservation, the
  timeline event). The SKUs on its lines must exist (tests.inventory.factories.SkuFactory).

    OrderFactory(storefront=shop, payload__lines=[{"sku": sku.code, "quantity": 1}])
    OrderInputFactory(body=order_body, external_id="X-2")
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import factory
from factory.django import DjangoModelFactory

from orders.models import Order, Storefront
from orders.services import OrderInput, order_create


class StorefrontFactory(DjangoModelFactory):
    """The storefront "web" unless told otherwise; asking for the same code twice gives the same row."""

    class Meta:
        model = Storefront
        django_get_or_create = ("code",)

    code = "web"
    name = "官网"


class CustomerBodyFactory(factory.DictFactory):
    name = "张小姐"
    mobile = "13800138000"
    email = "zhang@example.com"
    member_id = "M001"


class AddressBodyFactory(factory.DictFactory):
    receiver = "张小姐"
    phone = "13800138000"
    province = "浙江省"
    city = "杭州市"
    district = "西湖区"
    detail = "文三路100号"
    postcode = "310000"


class LineBodyFactory(factory.DictFactory):
    sku = "TSHIRT-L-BLK"
    quantity = 3


class OrderBodyFactory(factory.DictFactory):
    """A valid order request body: 3 x TSHIRT-L-BLK (the `tshirt` fixture), paid by Alipay."""

    external_id = factory.Sequence(lambda n: f"F-{n:05d}")
    order_type = "normal"
    payment_method = "alipay"
    customer = factory.SubFactory(CustomerBodyFactory)
    shipping_address = factory.SubFactory(AddressBodyFactory)
    lines = factory.List([factory.SubFactory(LineBodyFactory)])
    remark = "请尽快发货"


def _from_body(key: str, default: Any = None):
    """An OrderInput field read from the factory's `body`, copied so the body stays the caller's."""
    return factory.LazyAttribute(lambda o: copy.deepcopy(o.body.get(key, default)))


class OrderInputFactory(factory.Factory):
    """A body as order_create receives it, with the API's defaults for the keys a body may leave out."""

    class Meta:
        model = OrderInput

    class Params:
        body = factory.SubFactory(OrderBodyFactory)

    external_id = _from_body("external_id")
    order_type = _from_body("order_type", "normal")
    payment_method = _from_body("payment_method")
    customer = _from_body("customer")
    shipping_address = _from_body("shipping_address")
    lines = _from_body("lines")
    coupon_code = _from_body("coupon_code", "")
    remark = _from_body("remark", "")
    expected_total = factory.LazyAttribute(
        lambda o: None if o.body.get("expected_total") is None else Decimal(str(o.body["expected_total"]))
    )


class OrderFactory(factory.Factory):
    """A new order from order_create; fails if the payload's external_id was already used."""

    class Meta:
        model = Order

    storefront = factory.SubFactory(StorefrontFactory)
    payload = factory.SubFactory(OrderInputFactory)
    now = None

    @classmethod
    def _create(cls, model_class, *, storefront: Storefront, payload: OrderInput, now=None) -> Order:
        order, created = order_create(storefront=storefront, payload=payload, now=now)
        assert created, f"{payload.external_id} is already an order of {storefront.code}"
        return order

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise NotImplementedError("orders exist only through order_create; use OrderFactory() or .create()")
