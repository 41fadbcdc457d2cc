"""The timeline read by people: every event type a sentence, sorted into kinds."""

from __future__ import annotations

import pytest

from orders.events import Actor
from orders.models import OrderEvent
from orders.services import order_pay
from orders.timeline import Kind, event_kind, event_sentence
from tests.fulfillment.factories import ship_whole_order
from tests.orders.factories import OrderFactory
from tests.payments.ledger_factories import succeeded_payment

pytestmark = pytest.mark.django_db


def test_created_reads_as_one_sentence_with_the_money(storefront, tshirt):
    order = OrderFactory(storefront=storefront, payload__lines=[{"sku": tshirt.code, "quantity": 3}])
    event = order.events.get(type=OrderEvent.Type.CREATED)
    assert event_sentence(event) == "店铺 web 下单：商品 ¥210.00，优惠 ¥0.00，运费 ¥0.00，应付 ¥210.00"
    assert event_kind(event) == Kind.ORDER


def test_pay_and_ship_sentences_and_kinds(storefront, tshirt):
    order = OrderFactory(storefront=storefront, payload__lines=[{"sku": tshirt.code, "quantity": 1}])
    order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("alipay"))
    ship_whole_order(order, actor=Actor.system("test"))
    sentences = {e.type: (event_sentence(e), event_kind(e)) for e in order.events.all()}
    assert sentences[OrderEvent.Type.PAY] == (f"收到付款 ¥{order.payable_total}（支付渠道 alipay）", Kind.MONEY)
    text, kind = sentences[OrderEvent.Type.SHIPMENT_SHIPPED]
    assert kind == Kind.FULFILLMENT
    assert "顺丰速运" in text and "TSHIRT-L-BLK × 1" in text


def test_every_event_type_has_a_readable_sentence(storefront, tshirt):
    """No type falls through to raw JSON: even with no data an event reads as Chinese text."""
    order = OrderFactory(storefront=storefront, payload__lines=[{"sku": tshirt.code, "quantity": 1}])
    for value in OrderEvent.Type.values:
        event = OrderEvent(order=order, type=value, actor_kind="system", actor_label="job", data={})
        sentence = event_sentence(event)
        assert sentence and "{" not in sentence and "None" not in sentence, (value, sentence)


def test_the_order_page_reads_the_timeline_and_filters_it_by_kind(admin_client, storefront, tshirt):
    order = OrderFactory(storefront=storefront, payload__lines=[{"sku": tshirt.code, "quantity": 1}])
    order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("alipay"))
    url = f"/admin/orders/order/{order.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert "店铺 web 下单" in page and "收到付款" in page and "<details>" in page
    money = admin_client.get(url + "?timeline=money").content.decode()
    assert "收到付款" in money and "店铺 web 下单" not in money


def test_the_order_page_shows_the_channel_really_paid_and_no_save_buttons(admin_client, storefront, tshirt):
    order = OrderFactory(storefront=storefront, payload__lines=[{"sku": tshirt.code, "quantity": 1}])
    assert order.payment_method == "alipay"
    succeeded_payment(order, channel="wechatpay")
    page = admin_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "实付渠道" in page and "微信支付" in page.split("实付渠道")[1][:300]
    assert 'name="_continue"' not in page and 'name="_save"' not in page
