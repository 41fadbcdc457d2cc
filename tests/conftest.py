from __future__ import annotations

import copy
import json
import re
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from inventory.models import Sku
from orders.models import Storefront, StorefrontAPIKey
from tests.inventory.factories import SkuFactory, WarehouseFactory
from tests.orders.factories import OrderBodyFactory, StorefrontFactory


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` need real row locks; skip them on SQLite."""
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def order_body():
    """A valid order request (tests.orders.factories.OrderBodyFactory), fresh for each test to change freely."""
    return OrderBodyFactory(external_id="WEB-10001")


@pytest.fixture
def warehouse(db):
    return WarehouseFactory()  # HZ01 杭州主仓


@pytest.fixture
def make_sku(db, warehouse):
    def make(code: str, price: str = "70.00", stock: int = 100, *, active: bool = True, spec: str = "") -> Sku:
        return SkuFactory(
            code=code, spec=spec or "默认", price=Decimal(price), active=active, stock=stock, stock__warehouse=warehouse
        )

    return make


@pytest.fixture
def tshirt(make_sku):
    return make_sku("TSHIRT-L-BLK", "70.00", 100, spec="L码 黑色")


@pytest.fixture
def storefront(db):
    return StorefrontFactory()  # web 官网


def client_for(storefront: Storefront) -> APIClient:
    _, key = StorefrontAPIKey.objects.create_key(name="test", storefront=storefront)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def api(storefront):
    return client_for(storefront)


@pytest.fixture
def create_order(api, order_body, tshirt):
    """Post an order through the API and return the JSON; keyword overrides change the body."""
    counter = {"n": 0}

    def create(**overrides):
        counter["n"] += 1
        body = copy.deepcopy(order_body)
        body["external_id"] = f"T-{counter['n']}"
        body.update(overrides)
        response = api.post("/api/v1/orders/", body, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    return create


def force_login_verified(client, user) -> None:
    """Log a staff user in as if they had passed two-factor too (财务 and 主管 must; see accounts/).

    For tests about what such a user does in the admin, not about logging in.
    """
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def chart_options(html: str, key: str) -> dict:
    """The ECharts options a page emitted with json_script under the id `key`."""
    match = re.search(rf'<script id="{re.escape(key)}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no chart options {key!r} on the page"
    return json.loads(match.group(1))


def script_sources(html: str) -> list[str]:
    """The src of every <script> of a page."""
    return re.findall(r"""<script[^>]*\ssrc=["']?([^"'\s>]+)""", html)
