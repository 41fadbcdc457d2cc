from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from orders.models import Coupon, Order
from orders.pricing import allocate

D = Decimal


def make_coupon(code="C1", **fields):
    defaults = {"name": code, "kind": Coupon.Kind.THRESHOLD, "threshold": D("200"), "reduction": D("30")}
    return Coupon.objects.create(code=code, **{**defaults, **fields})


def post(api, body, **overrides):
    return api.post("/api/v1/orders/", {**body, **overrides}, format="json")


@pytest.fixture
def priced_skus(make_sku):
    # 420.00 of goods as 6 x 70.00
    return make_sku("TSHIRT-L-BLK", "70.00", 100)


def test_threshold_coupon_applies_once(api, order_body, priced_skus):
    make_coupon("FULL200-30")
    body = post(api, order_body, lines=[{"sku": "TSHIRT-L-BLK", "quantity": 6}], coupon_code="FULL200-30").json()
    assert (body["goods_total"], body["discount_total"], body["payable_total"]) == ("420.00", "30.00", "390.00")


def test_every_threshold_coupon_repeats(api, order_body, priced_skus):
    make_coupon("EVERY200-30", kind=Coupon.Kind.EVERY_THRESHOLD)
    body = post(api, order_body, lines=[{"sku": "TSHIRT-L-BLK", "quantity": 6}], coupon_code="EVERY200-30").json()
    assert (body["discount_total"], body["payable_total"]) == ("60.00", "360.00")


def test_threshold_edge_exactly_at_threshold_applies(api, order_body, make_sku):
    make_sku("EXACT", "200.00")
    make_coupon("FULL200-30")
    response = post(api, order_body, lines=[{"sku": "EXACT", "quantity": 1}], coupon_code="FULL200-30")
    assert response.status_code == 201
    assert response.json()["discount_total"] == "30.00"


def test_threshold_edge_one_cent_below_is_refused_and_creates_nothing(api, order_body, make_sku):
    make_sku("BELOW", "199.99")
    make_coupon("FULL200-30")
    response = post(api, order_body, lines=[{"sku": "BELOW", "quantity": 1}], coupon_code="FULL200-30")
    assert response.status_code == 400
    assert response.json()["code"] == "coupon_not_applicable"
    assert response.json()["details"]["reason"] == "below_threshold"
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"valid_until": timezone.now() - timedelta(seconds=1)}, "expired"),
        ({"valid_from": timezone.now() + timedelta(hours=1)}, "not_started"),
        ({"usage_limit": 1, "used_count": 1}, "used_up"),
        ({"active": False}, "inactive"),
    ],
)
def test_coupon_not_applicable_reasons(api, order_body, priced_skus, fields, reason):
    make_coupon("C1", **fields)
    response = post(api, order_body, lines=[{"sku": "TSHIRT-L-BLK", "quantity": 6}], coupon_code="C1")
    assert response.status_code == 400
    assert response.json()["code"] == "coupon_not_applicable"
    assert response.json()["details"]["reason"] == reason
    assert Order.objects.count() == 0


def test_usage_limit_counts_and_stops(api, order_body, priced_skus):
    coupon = make_coupon("ONCE", usage_limit=1)
    first = post(api, order_body, lines=[{"sku": "TSHIRT-L-BLK", "quantity": 6}], coupon_code="ONCE")
    second = post(
        api, order_body, external_id="X-2", lines=[{"sku": "TSHIRT-L-BLK", "quantity": 6}], coupon_code="ONCE"
    )
    assert first.status_code == 201
    assert second.status_code == 400 and second.json()["details"]["reason"] == "used_up"
    coupon.refresh_from_db()
    assert coupon.used_count == 1


def test_percent_coupon_is_capped(api, order_body, priced_skus):
    make_coupon("OFF10", kind=Coupon.Kind.PERCENT, threshold=D("0"), percent_off=D("10"), max_discount=D("35"))
    body = post(api, order_body, lines=[{"sku": "TSHIRT-L-BLK", "quantity": 6}], coupon_code="OFF10").json()
    assert body["discount_total"] == "35.00"  # 10% of 420 is 42, capped at 35
    body = post(
        api, order_body, external_id="X-2", lines=[{"sku": "TSHIRT-L-BLK", "quantity": 3}], coupon_code="OFF10"
    ).json()
    assert body["discount_total"] == "21.00"


def test_discount_split_across_three_lines_to_the_cent(api, order_body, make_sku):
    for code in ("A", "B", "C"):
        make_sku(code, "100.00")
    make_coupon("FULL300-100", threshold=D("300"), reduction=D("100"))
    body = post(
        api,
        order_body,
        lines=[{"sku": code, "quantity": 1} for code in ("A", "B", "C")],
        coupon_code="FULL300-100",
    ).json()
    shares = [D(line["discount"]) for line in body["lines"]]
    assert shares == [D("33.34"), D("33.33"), D("33.33")]
    assert sum(shares) == D("100.00") == D(body["discount_total"])


def test_uneven_lines_allocation_in_proportion(api, order_body, make_sku):
    make_sku("A", "10.00")
    make_sku("B", "20.00")
    make_sku("C", "70.01")
    make_coupon("FULL100-7", threshold=D("100"), reduction=D("7.00"))
    body = post(
        api,
        order_body,
        lines=[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}, {"sku": "C", "quantity": 1}],
        coupon_code="FULL100-7",
    ).json()
    shares = [D(line["discount"]) for line in body["lines"]]
    assert sum(shares) == D("7.00")
    assert shares == [D("0.70"), D("1.40"), D("4.90")]


def test_shipping_fee_below_and_at_free_threshold(api, order_body, make_sku, settings):
    settings.OMS_SHIPPING_FEE = D("10.00")
    settings.OMS_FREE_SHIPPING_THRESHOLD = D("99.00")
    make_sku("CHEAP", "98.99")
    make_sku("FREE", "99.00")
    cheap = post(api, order_body, lines=[{"sku": "CHEAP", "quantity": 1}]).json()
    free = post(api, order_body, external_id="X-2", lines=[{"sku": "FREE", "quantity": 1}]).json()
    assert (cheap["shipping_fee"], cheap["payable_total"]) == ("10.00", "108.99")
    assert (free["shipping_fee"], free["payable_total"]) == ("0.00", "99.00")


def test_expected_total_mismatch_answers_409_with_breakdown(api, order_body, tshirt):
    response = post(api, order_body, expected_total="1.00")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "price_mismatch"
    assert body["details"] == {
        "goods_total": "210.00",
        "discount_total": "0.00",
        "shipping_fee": "0.00",
        "payable_total": "210.00",
    }
    assert Order.objects.count() == 0


def test_expected_total_match_is_accepted(api, order_body, tshirt):
    assert post(api, order_body, expected_total="210.00").status_code == 201


def test_large_amount_gets_review_flag(api, order_body, make_sku, settings):
    settings.OMS_LARGE_ORDER_THRESHOLD = D("10000.00")
    make_sku("LAPTOP", "10000.00")
    make_sku("PHONE", "9999.99")
    post(api, order_body, lines=[{"sku": "LAPTOP", "quantity": 1}])
    post(api, order_body, external_id="X-2", lines=[{"sku": "PHONE", "quantity": 1}])
    assert Order.objects.get(external_id="WEB-10001").review_flags == ["large_amount"]
    assert Order.objects.get(external_id="X-2").review_flags == []


def test_payment_deadline_by_order_type(api, order_body, tshirt, settings):
    settings.OMS_PAYMENT_TIMEOUT_MINUTES = {"normal": 24 * 60, "promo": 6 * 60, "custom": 48 * 60}
    for index, (order_type, hours) in enumerate([("normal", 24), ("promo", 6), ("custom", 48)]):
        post(api, order_body, external_id=f"D-{index}", order_type=order_type)
        order = Order.objects.get(external_id=f"D-{index}")
        assert order.payment_deadline - order.created_at == pytest.approx(
            timedelta(hours=hours), abs=timedelta(seconds=2)
        )


@given(
    total_cents=st.integers(min_value=0, max_value=10**7),
    weights=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=20),
)
def test_allocate_always_sums_exactly_and_never_exceeds_a_line(total_cents, weights):
    weight_values = [D(w) / 100 for w in weights]
    total = min(D(total_cents) / 100, sum(weight_values))
    shares = allocate(total, weight_values)
    assert sum(shares) == total
    assert all(D(0) <= share <= weight for share, weight in zip(shares, weight_values, strict=True))
