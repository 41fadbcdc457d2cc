"""Order create: idempotency, stock races, isolation, and a query bound that does not grow with lines."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from rest_framework import serializers

from inventory.models import Reservation, StockLevel
from orders import services
from orders.api.serializers import OrderOutSerializer, ReadsAttributesDirectly, status_label
from orders.models import CustomerRiskFlag, Order, OrderEvent
from tests.conftest import client_for
from tests.orders.factories import OrderInputFactory


def test_same_body_twice_returns_the_same_order(api, order_body, tshirt):
    first = api.post("/api/v1/orders/", order_body, format="json")
    second = api.post("/api/v1/orders/", order_body, format="json")
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["order_no"] == first.json()["order_no"]
    assert Order.objects.count() == 1
    assert StockLevel.objects.get(sku=tshirt).reserved == 3  # reserved once, not twice


def test_same_external_id_with_different_body_is_409(api, order_body, tshirt):
    api.post("/api/v1/orders/", order_body, format="json")
    order_body["lines"][0]["quantity"] = 4
    response = api.post("/api/v1/orders/", order_body, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert Order.objects.count() == 1
    assert StockLevel.objects.get(sku=tshirt).reserved == 3


def test_same_external_id_in_two_storefronts_are_two_orders(api, order_body, tshirt):
    from orders.models import Storefront

    other = client_for(Storefront.objects.create(code="app", name="App"))
    assert api.post("/api/v1/orders/", order_body, format="json").status_code == 201
    assert other.post("/api/v1/orders/", order_body, format="json").status_code == 201
    assert Order.objects.count() == 2


def test_storefront_cannot_read_another_storefronts_order(api, order_body, tshirt):
    from orders.models import Storefront

    order_no = api.post("/api/v1/orders/", order_body, format="json").json()["order_no"]
    other = client_for(Storefront.objects.create(code="app", name="App"))
    assert api.get(f"/api/v1/orders/{order_no}/").status_code == 200
    for response in (
        other.get(f"/api/v1/orders/{order_no}/"),
        other.post(f"/api/v1/orders/{order_no}/cancel/", {"reason": "changed_mind"}, format="json"),
        other.patch(f"/api/v1/orders/{order_no}/address/", {"detail": "别处"}, format="json"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert Order.objects.get().status == "pending_payment"


def test_insufficient_stock_is_409_listing_availability(api, order_body, make_sku):
    make_sku("RARE", "10.00", stock=1)
    make_sku("PLENTY", "10.00", stock=50)
    order_body["lines"] = [{"sku": "RARE", "quantity": 3}, {"sku": "PLENTY", "quantity": 2}]
    response = api.post("/api/v1/orders/", order_body, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_stock"
    assert response.json()["details"] == {"RARE": {"requested": 3, "available": 1}}
    assert Order.objects.count() == 0
    assert sum(StockLevel.objects.values_list("reserved", flat=True)) == 0


def test_line_split_across_warehouses(api, order_body, tshirt):
    from inventory.models import Warehouse

    StockLevel.objects.filter(sku=tshirt).update(on_hand=2)
    second = Warehouse.objects.create(code="GZ01", name="广州分仓")
    StockLevel.objects.create(sku=tshirt, warehouse=second, on_hand=5)
    assert api.post("/api/v1/orders/", order_body, format="json").status_code == 201
    assert sorted(Reservation.objects.values_list("quantity", flat=True)) == [1, 2]
    assert sorted(StockLevel.objects.values_list("reserved", flat=True)) == [1, 2]


def test_a_replay_is_answered_when_none_of_its_skus_exists_any_more(api, order_body, tshirt):
    """The replay check rides on the SKU read; with no SKU row to carry it, it is asked alone."""
    first = api.post("/api/v1/orders/", order_body, format="json")
    assert first.status_code == 201
    tshirt.code = "RENAMED"
    tshirt.save(update_fields=["code"])
    again = api.post("/api/v1/orders/", order_body, format="json")
    assert again.status_code == 200 and again.json()["order_no"] == first.json()["order_no"]
    order_body["external_id"] = "NEW-1"
    fresh = api.post("/api/v1/orders/", order_body, format="json")
    assert fresh.status_code == 400 and "lines[0].sku" in fresh.json()["fields"]


@pytest.mark.parametrize("known_sku", [True, False])
def test_a_flagged_customer_is_refused_cash_on_delivery_whether_or_not_the_skus_exist(
    api, order_body, tshirt, known_sku
):
    CustomerRiskFlag.objects.create(
        mobile=order_body["customer"]["mobile"], reason="3 次超时", flagged_at=timezone.now()
    )
    if not known_sku:
        order_body["lines"][0]["sku"] = "NO-SUCH-SKU"
    response = api.post("/api/v1/orders/", {**order_body, "payment_method": "cod"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "customer_restricted"
    assert not Order.objects.exists()


def test_an_order_number_already_taken_is_drawn_again(storefront, tshirt, monkeypatch):
    """The order's INSERT travels with the stock lock (PostgreSQL): its unique violation is raised
    there, rolled back, and the order is written with a new number and the keys drawn for it."""
    first, _ = services.order_create(storefront=storefront, payload=OrderInputFactory(external_id="N-1"))
    numbers = iter([first.order_no, "20261111" + "0" * 10])
    monkeypatch.setattr(services, "_new_order_no", lambda now: next(numbers))
    second, created = services.order_create(storefront=storefront, payload=OrderInputFactory(external_id="N-2"))
    assert created and second.order_no == "20261111" + "0" * 10
    assert Order.objects.count() == 2 and OrderEvent.objects.filter(order=second).count() == 1
    assert Reservation.objects.filter(order_line__order=second).count() == second.lines.count()
    assert StockLevel.objects.get(sku=tshirt).reserved == 2 * sum(line.quantity for line in second.lines.all())


def test_create_query_count_does_not_grow_with_lines(storefront, make_sku, django_assert_max_num_queries):
    for index in range(20):
        make_sku(f"SKU-{index}", "10.00")

    def count_for(lines: int, external_id: str) -> int:
        payload = OrderInputFactory(
            external_id=external_id, lines=[{"sku": f"SKU-{i}", "quantity": 1} for i in range(lines)]
        )
        with CaptureQueriesContext(connection) as captured:
            services.order_create(storefront=storefront, payload=payload)
        return len(captured)

    one, twenty = count_for(1, "Q-1"), count_for(20, "Q-20")
    assert one == twenty
    # Round trips: one read (the SKUs, each row carrying the replay check, the customer's risk
    # flag and, on PostgreSQL, the keys drawn for the new rows), SAVEPOINT, then the order, its
    # lines and its "created" event with the stock rows' lock, then their reserved units with
    # the reservations, RELEASE SAVEPOINT. Without deferred statements (SQLite) it is 9.
    with django_assert_max_num_queries(5 if connection.vendor == "postgresql" else 9):
        services.order_create(
            storefront=storefront,
            payload=OrderInputFactory(external_id="Q-3", lines=[{"sku": f"SKU-{i}", "quantity": 2} for i in range(3)]),
        )


def test_api_create_query_bound(api, order_body, make_sku, django_assert_max_num_queries):
    for index in range(10):
        make_sku(f"SKU-{index}", "10.00")
    order_body["lines"] = [{"sku": f"SKU-{i}", "quantity": 1} for i in range(10)]
    # order_create's 5 round trips (9 without deferred statements), and the API key (the answer
    # is built from what order_create wrote, not read back; OMS_API_KEY_CACHE_SECONDS is 0 in
    # the tests, so the key is looked up).
    with django_assert_max_num_queries(6 if connection.vendor == "postgresql" else 10):
        assert api.post("/api/v1/orders/", order_body, format="json").status_code == 201


def test_the_create_answer_is_what_a_read_of_the_order_answers(api, order_body, make_sku):
    """The 201 is built from the objects order_create wrote, not read back: it must be the same."""
    from orders.models import Coupon

    Coupon.objects.create(code="FULL100-7", name="满100减7", kind=Coupon.Kind.THRESHOLD, threshold=100, reduction=7)
    make_sku("MUG", "39.90")
    make_sku("CAP", "59.00")
    make_sku("TSHIRT", "70.00")
    order_body["lines"] = [
        {"sku": "MUG", "quantity": 2},
        {"sku": "CAP", "quantity": 1},
        {"sku": "TSHIRT", "quantity": 3},
    ]
    order_body["coupon_code"] = "FULL100-7"
    created = api.post("/api/v1/orders/", order_body, format="json")
    assert created.status_code == 201
    answer = created.json()
    assert [line["discount"] for line in answer["lines"]] != ["0.00"] * 3  # the discount was split

    read = api.get(f"/api/v1/orders/{answer['order_no']}/")
    replay = api.post("/api/v1/orders/", order_body, format="json")

    assert read.json() == answer
    assert (replay.status_code, replay.json()) == (200, answer)


def _run_threads(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def runner(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # the result is inspected by the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_orders_for_ten_units_exactly_ten_win(storefront, make_sku):
    from oms.errors import InsufficientStock

    sku = make_sku("HOT", "99.00", stock=10)
    results = _run_threads(
        50,
        lambda i: services.order_create(
            storefront=storefront,
            payload=OrderInputFactory(external_id=f"RACE-{i}", lines=[{"sku": "HOT", "quantity": 1}]),
        ),
    )
    winners = [r for r in results if isinstance(r, tuple)]
    losers = [r for r in results if isinstance(r, InsufficientStock)]
    assert len(winners) == 10, [r for r in results if not isinstance(r, (tuple, InsufficientStock))]
    assert len(losers) == 40
    level = StockLevel.objects.get(sku=sku)
    assert (level.on_hand, level.reserved) == (10, 10)
    assert Order.objects.count() == 10
    assert Reservation.objects.filter(status="active").count() == 10
    assert OrderEvent.objects.filter(type="created").count() == 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_multi_sku_orders_do_not_deadlock(storefront, make_sku):
    make_sku("A", "10.00", stock=100)
    make_sku("B", "10.00", stock=100)

    def work(i: int):
        lines = [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]
        if i % 2:
            lines.reverse()  # opposite line order must not deadlock: rows are locked by primary key
        return services.order_create(
            storefront=storefront, payload=OrderInputFactory(external_id=f"DL-{i}", lines=lines)
        )

    results = _run_threads(20, work)
    assert all(isinstance(r, tuple) for r in results), results
    assert sorted(StockLevel.objects.values_list("reserved", flat=True)) == [20, 20]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_posts_create_one_order(storefront, tshirt):
    payload = OrderInputFactory()
    results = _run_threads(10, lambda i: services.order_create(storefront=storefront, payload=payload))
    assert all(isinstance(r, tuple) for r in results), results
    assert len({order.order_no for order, _ in results}) == 1
    assert sum(1 for _, created in results if created) == 1
    assert Order.objects.count() == 1
    assert StockLevel.objects.get(sku=tshirt).reserved == 3


def test_the_answer_read_column_by_column_is_what_drf_would_build(api, create_order, monkeypatch):
    """OrderOutSerializer reads plain columns with getattr (ReadsAttributesDirectly): the JSON
    must be what DRF's own to_representation builds, for a new order and a paid one."""
    new = Order.objects.get(order_no=create_order()["order_no"])
    paid = Order.objects.get(order_no=create_order()["order_no"])
    services.order_pay(order=paid, amount=paid.payable_total, actor=services.Actor.system("test"))
    answers = {}
    for label in ("direct", "drf"):
        if label == "drf":
            monkeypatch.setattr(ReadsAttributesDirectly, "to_representation", serializers.Serializer.to_representation)
        answers[label] = [
            OrderOutSerializer(Order.objects.prefetch_related("lines").get(pk=order.pk)).data for order in (new, paid)
        ]
    assert answers["direct"] == answers["drf"]
    assert answers["direct"][1]["paid_at"] and answers["direct"][1]["status_display"] == "待发货"


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_answers_status_label_is_get_status_display_in_each_language(language):
    """status_label keeps one table per language; it must say what Django's get_status_display
    says for every status, in the language active at the time (and the bare value for none)."""
    with translation.override(language):
        for value, _label in Order._meta.get_field("status").flatchoices:
            assert status_label(value) == Order(status=value).get_status_display()
        assert status_label("no-such-status") == "no-such-status"
    with translation.override("en"):
        english = status_label("pending_payment")
    with translation.override("zh-hans"):
        assert status_label("pending_payment") == "待付款" != english
