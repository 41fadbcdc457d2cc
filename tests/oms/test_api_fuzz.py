"""Schemathesis against our own OpenAPI schema: no 5xx, and no answer the schema does not describe.

It loads /api/schema/ from the Django WSGI app, generates requests for every storefront
operation (schema-valid ones and schema-violating ones), sends them with a real storefront
API key, and checks each answer. Path parameters point at real orders of this storefront
half of the time, and half the valid order bodies name a real SKU, so the fuzzing gets
past 404 and "unknown SKU" into the services. The warehouse API is fuzzed the same way
with a warehouse's key: shipment numbers are real parcels half of the time, and half the
valid ship bodies carry a well-formed SF number, so some parcels really ship. The WeChat Pay sandbox is served by the live
server, as in tests/payments. Marked `postgres`: CI runs it; `OMS_FUZZ_MAX_EXAMPLES` (60 per
operation and mode) bounds it. Deterministic (derandomized), so a CI failure reproduces.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.db import DEFAULT_DB_ALIAS, connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fulfillment.models import WarehouseAPIKey
from fulfillment.services import order_allocate
from orders.events import Actor
from orders.models import Order, StorefrontAPIKey
from orders.services import order_pay
from tests.orders.factories import OrderBodyFactory

MAX_EXAMPLES = int(os.environ.get("OMS_FUZZ_MAX_EXAMPLES", "60"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
]

pytestmark = [pytest.mark.postgres, pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fuzz_world(settings, tmp_path, live_server, monkeypatch, storefront, tshirt, warehouse, api):
    """A storefront with a key, stock, and orders to aim at; a warehouse with a key and parcels
    of paid orders; the sandbox gateway on the live server."""
    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "CONN_MAX_AGE", 0)
    settings.SANDBOX_KEY_DIR = tmp_path / "sandbox"
    settings.ALIPAY_APP_ID = settings.WECHATPAY_MCHID = ""
    settings.OMS_SITE_URL = live_server.url
    _, key = StorefrontAPIKey.objects.create_key(name="fuzz", storefront=storefront)
    for n in range(3):
        response = api.post("/api/v1/orders/", OrderBodyFactory(external_id=f"FUZZ-{n}"), format="json")
        assert response.status_code == 201, response.content
    order_nos = list(Order.objects.values_list("order_no", flat=True))
    shipment_nos = []
    for n in range(3):
        response = api.post("/api/v1/orders/", OrderBodyFactory(external_id=f"FUZZ-WH-{n}"), format="json")
        order = Order.objects.get(order_no=response.json()["order_no"])
        order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("fuzz"))
        # not among order_nos: the storefront's fuzzing would cancel them before the warehouse's turn
        shipment_nos += [shipment.shipment_no for shipment in order_allocate(order=order)]
    _, warehouse_key = WarehouseAPIKey.objects.create_key(name="fuzz", warehouse=warehouse)
    return {
        "key": key,
        "order_nos": order_nos,
        "warehouse_key": warehouse_key,
        "shipment_nos": shipment_nos,
    }


def fuzz_operation(
    operation, mode: GenerationMode, *, headers: dict, order_nos: list[str], shipment_nos: list[str], counter: Counter
) -> None:
    label = f"{operation.label} ({mode})"

    @given(case=operation.as_strategy(generation_mode=mode), pick=st.integers(0, 2 * len(order_nos) - 1))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same cases on every run: a CI failure reproduces locally
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case, pick):
        if "order_no" in (case.path_parameters or {}) and pick < len(order_nos):
            case.path_parameters["order_no"] = order_nos[pick]
        if "shipment_no" in (case.path_parameters or {}) and pick % 2 == 0:
            case.path_parameters["shipment_no"] = shipment_nos[pick // 2 % len(shipment_nos)]
        if mode.is_positive and operation.label.endswith("/ship/") and pick % 4 == 0 and isinstance(case.body, dict):
            case.body.update(carrier="shunfeng", tracking_no=f"SF{4000000000 + pick}")  # a well-formed number
        if mode.is_positive and operation.label == "POST /api/v1/orders/" and pick % 2 == 0:
            lines = case.body.get("lines") if isinstance(case.body, dict) else None
            if lines and isinstance(lines[0], dict):
                lines[0]["sku"] = "TSHIRT-L-BLK"  # a real SKU, so creation itself is fuzzed too
        if not mode.is_positive and isinstance(case.query, dict):
            # A query value of None or [] is left out of the URL, so the violation it stands for
            # (an unknown parameter, a null) never reaches the server; send it as an empty value.
            case.query = {key: "" if value is None or value == [] else value for key, value in case.query.items()}
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        counter[label] += 1
        counter[f"status {response.status_code}"] += 1

    run()


def test_storefront_and_warehouse_apis_conform_to_their_schema(fuzz_world, capsys):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    storefront_headers = {"Authorization": f"Api-Key {fuzz_world['key']}"}
    warehouse_headers = {"Authorization": f"Api-Key {fuzz_world['warehouse_key']}"}
    counter: Counter[str] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        warehouse_api = operation.path.startswith("/api/v1/warehouse/")
        headers = warehouse_headers if warehouse_api else storefront_headers
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(
                    operation,
                    mode,
                    headers=headers,
                    order_nos=fuzz_world["order_nos"],
                    shipment_nos=fuzz_world["shipment_nos"],
                    counter=counter,
                )
            except (Exception, BaseExceptionGroup) as exc:  # the shrunk failures; report every operation's
                failures.append(f"{operation.label} ({mode}):\n{exc}")
    with capsys.disabled():
        statuses = {key: n for key, n in sorted(counter.items()) if key.startswith("status ")}
        cases = sum(counter.values()) - sum(statuses.values())
        print(f"\nschemathesis: {cases} cases, {len(failures)} failing operation/mode pairs; {statuses}")
    assert not failures, "\n\n".join(failures)
