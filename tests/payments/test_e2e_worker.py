"""End to end with the sandbox and a real Celery worker process against Redis:
order -> payment attempt -> sandbox page pay -> cashier 支付 -> the worker delivers a
really signed notify to our notify URL -> the order reaches 待发货. Nobody calls a task by hand.
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from django.conf import settings as django_settings

from orders.models import Order
from payments.models import PaymentNotification
from tests.conftest import client_for
from tests.processes import celery_processes


@pytest.fixture
def worker(live_server, settings, tmp_path):
    if not django_settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    settings.OMS_SITE_URL = live_server.url
    settings.SANDBOX_KEY_DIR = tmp_path / "sandbox"
    settings.ALIPAY_APP_ID = settings.WECHATPAY_MCHID = ""
    env = {
        "OMS_SITE_URL": live_server.url,
        "SANDBOX_KEY_DIR": str(tmp_path / "sandbox"),
        "SANDBOX_RETRY_SCALE": "0.001",
    }
    with celery_processes(["worker"], log_dir=tmp_path, **env):
        yield


@pytest.mark.postgres
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_sandbox_payment_reaches_awaiting_shipment_through_a_real_worker(worker, storefront, order_body, tshirt):
    api = client_for(storefront)
    order_no = api.post("/api/v1/orders/", order_body, format="json").json()["order_no"]
    started = api.post(f"/api/v1/orders/{order_no}/payments/", {"channel": "alipay"}, format="json")
    assert started.status_code == 201, started.content
    pay_url = started.json()["pay_url"]

    browser = requests.Session()
    cashier = browser.get(pay_url, timeout=10)  # the sandbox checks our signature, then shows its cashier
    assert cashier.status_code == 200 and "支付" in cashier.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', cashier.text).group(1)
    paid = browser.post(
        cashier.url, data={"action": "pay", "csrfmiddlewaretoken": token}, headers={"Referer": cashier.url}, timeout=10
    )
    assert paid.status_code == 200, paid.text[:500]

    deadline = time.monotonic() + 90
    order = Order.objects.get(order_no=order_no)
    while order.status == "pending_payment" and time.monotonic() < deadline:
        time.sleep(0.5)
        order.refresh_from_db()
    assert order.status == "awaiting_shipment"
    assert order.paid_total == order.payable_total
    notification = PaymentNotification.objects.get(outcome="applied")
    assert notification.verified and notification.order_id == order.pk
