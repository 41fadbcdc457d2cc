"""The order state machine, driven through orders.services.

For every transition: each allowed source moves the order, stamps the milestone and writes
exactly one event naming the actor; every other source raises InvalidTransition and leaves
the order, its timeline, the stock, refunds and coupons exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import F
from django.utils import timezone

from fulfillment.models import Shipment
from inventory.models import Reservation, StockLevel
from oms.errors import InvalidTransition, PermissionDenied, ReviewRequired, ValidationFailed
from orders import services
from orders.models import (
    BEFORE_SHIPMENT,
    SYSTEM_CANCEL_REASONS,
    CancelReason,
    Coupon,
    Order,
    OrderEvent,
    PaymentMethod,
    ReviewFlag,
)
from orders.models import OrderStatus as S
from orders.services import Actor
from payments.models import Refund
from payments.services import cod_collect
from tests.fulfillment.factories import ship_whole_order
from tests.orders.factories import OrderFactory
from workflows.cancellation import order_cancel

pytestmark = pytest.mark.django_db

GATEWAY = Actor.gateway("alipay")
QUANTITY = 3


# --- building orders -------------------------------------------------------------


# The transitions that bring a fresh pending order to each status; a COD order reaches
# 待发货 by confirm_cod instead of pay + approve (but can still be paid, for the refusal tests).
PATHS = {
    S.PENDING_PAYMENT: (),
    S.PAID: ("pay",),
    S.AWAITING_SHIPMENT: ("pay", "approve"),
    S.SHIPPED: ("pay", "approve", "ship"),
    S.COMPLETED: ("pay", "approve", "ship", "complete"),
    S.CANCELLED: ("cancel",),
}


def path_to(status: str, payment_method: str) -> tuple[str, ...]:
    path = PATHS[status]
    if payment_method == PaymentMethod.COD and path[:2] == ("pay", "approve"):
        return ("confirm_cod", *path[2:])
    return path


def complete(order: Order) -> Order:
    """确认收货; a cash-on-delivery order only once the carrier collected the money."""
    if order.payment_method == PaymentMethod.COD:
        cod_collect(order=order, amount=order.payable_total, actor=Actor.system("carrier"))
    return services.order_complete(order=order, actor=Actor.system("auto_confirm_receipt"))


def drive(order: Order, status: str, *, staff: Actor, cancel_reason: str) -> Order:
    """Bring a fresh pending order to `status` using only the services, checking every step."""
    steps = {
        "pay": lambda: services.order_pay(order=order, amount=order.payable_total, actor=GATEWAY, auto_approve=False),
        "approve": lambda: services.order_approve(order=order, actor=staff),
        "confirm_cod": lambda: services.order_confirm_cod(order=order, actor=staff),
        "ship": lambda: ship_whole_order(order, actor=staff),
        "complete": lambda: complete(order),
        # Only the system closes an order for timeout or a refused parcel; staff give other reasons.
        "cancel": lambda: order_cancel(
            order=order,
            actor=Actor.system("close_expired_orders") if cancel_reason in SYSTEM_CANCEL_REASONS else staff,
            reason=cancel_reason,
        ),
    }
    assert order.status == S.PENDING_PAYMENT
    for step in path_to(status, order.payment_method):
        steps[step]()
        order.refresh_from_db()
        assert order.status == SPECS[step].target, (step, order.status)
    order.refresh_from_db()
    assert order.status == status
    return order


@pytest.fixture
def staff_user(db):
    """A supervisor (主管): holds every order verb, so these tests are about the state machine alone."""
    user = get_user_model().objects.create_user("zhuguan", is_staff=True)
    user.groups.add(Group.objects.get(name="主管"))
    return user


@pytest.fixture
def reviewer(db):
    user = get_user_model().objects.create_user("reviewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="orders", codename="review_order"))
    return get_user_model().objects.get(pk=user.pk)  # fresh instance: no stale permission cache


@pytest.fixture
def new_order(storefront, tshirt):
    def make(*, payment_method: str = PaymentMethod.ALIPAY, coupon_code: str = "") -> Order:
        return OrderFactory(
            storefront=storefront,
            payload__lines=[{"sku": tshirt.code, "quantity": QUANTITY}],
            payload__payment_method=payment_method,
            payload__coupon_code=coupon_code,
        )

    return make


@pytest.fixture
def order_in(new_order, staff_user):
    """An order brought to `status` through the services."""

    def make(
        status: str,
        *,
        payment_method: str = PaymentMethod.ALIPAY,
        cancel_reason: str = CancelReason.CUSTOMER_CHANGED_MIND,
        coupon_code: str = "",
    ) -> Order:
        order = new_order(payment_method=payment_method, coupon_code=coupon_code)
        return drive(order, status, staff=Actor.staff(staff_user), cancel_reason=cancel_reason)

    return make


def snapshot(order: Order) -> dict:
    """Everything a refused operation must leave untouched."""
    fresh = Order.objects.get(pk=order.pk)
    return {
        "order": {f.attname: getattr(fresh, f.attname) for f in Order._meta.concrete_fields},
        "events": list(OrderEvent.objects.filter(order=order).order_by("id").values_list("id", "type")),
        "stock": list(StockLevel.objects.order_by("id").values_list("id", "on_hand", "reserved")),
        "reservations": list(Reservation.objects.order_by("id").values_list("id", "quantity", "status")),
        "refunds": list(Refund.objects.order_by("id").values_list("id", "out_refund_no", "amount")),
        "coupons": list(Coupon.objects.order_by("id").values_list("id", "used_count")),
    }


def last_event_id(order: Order) -> int:
    return OrderEvent.objects.filter(order=order).order_by("-id").values_list("id", flat=True).first() or 0


def events_after(order: Order, event_id: int) -> list[OrderEvent]:
    return list(OrderEvent.objects.filter(order=order, pk__gt=event_id).order_by("id"))


def reserved_units() -> int:
    return sum(StockLevel.objects.values_list("reserved", flat=True))


# --- the transition table --------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    sources: tuple[str, ...]
    target: str
    milestone: str
    payment_method: str = PaymentMethod.ALIPAY
    cancel_reason: str = CancelReason.CUSTOMER_CHANGED_MIND


SPECS = {
    "pay": Spec((S.PENDING_PAYMENT,), S.PAID, "paid_at"),
    "approve": Spec((S.PAID,), S.AWAITING_SHIPMENT, "approved_at"),
    # COD orders in every state, so a refusal below is about the status, not the payment method.
    "confirm_cod": Spec((S.PENDING_PAYMENT,), S.AWAITING_SHIPMENT, "approved_at", payment_method=PaymentMethod.COD),
    "ship": Spec((S.AWAITING_SHIPMENT,), S.SHIPPED, "shipped_at"),
    "complete": Spec((S.SHIPPED,), S.COMPLETED, "completed_at"),
    "cancel": Spec(tuple(BEFORE_SHIPMENT), S.CANCELLED, "cancelled_at"),
    # Closed by timeout and unpaid, so a refusal below is about the status, not the guard.
    "revive": Spec((S.CANCELLED,), S.PAID, "paid_at", cancel_reason=CancelReason.TIMEOUT),
}


def actor_for(name: str, user) -> Actor:
    return {
        "pay": GATEWAY,
        "approve": Actor.staff(user),
        "confirm_cod": Actor.staff(user),
        "ship": Actor.staff(user),
        "complete": Actor.system("auto_confirm_receipt"),
        "cancel": Actor.staff(user),
        "revive": Actor.gateway("wechatpay"),
    }[name]


def run(name: str, order: Order, actor: Actor) -> Order:
    if name == "pay":
        return services.order_pay(order=order, amount=order.payable_total, actor=actor, auto_approve=False)
    if name == "approve":
        return services.order_approve(order=order, actor=actor)
    if name == "confirm_cod":
        return services.order_confirm_cod(order=order, actor=actor)
    if name == "ship":
        return ship_whole_order(order, actor=actor)
    if name == "complete":
        return services.order_complete(order=order, actor=actor)
    if name == "cancel":
        return order_cancel(order=order, actor=actor, reason=CancelReason.CUSTOMER_CHANGED_MIND)
    if name == "revive":
        return services.order_revive(order=order, amount=order.payable_total, actor=actor)
    raise AssertionError(name)


ALLOWED = [
    pytest.param(name, source, id=f"{name}-from-{source}") for name, spec in SPECS.items() for source in spec.sources
]
REFUSED = [
    pytest.param(name, source, id=f"{name}-from-{source}")
    for name, spec in SPECS.items()
    for source in S.values
    if source not in spec.sources
]


@pytest.mark.parametrize(("name", "source"), ALLOWED)
def test_allowed_transition(name, source, order_in, staff_user):
    spec = SPECS[name]
    order = order_in(source, payment_method=spec.payment_method, cancel_reason=spec.cancel_reason)
    actor = actor_for(name, staff_user)
    had_money = order.paid_total > 0
    last = last_event_id(order)
    started = timezone.now()

    run(name, order, actor)

    order.refresh_from_db()
    assert order.status == spec.target
    stamp = getattr(order, spec.milestone)
    assert stamp is not None
    assert started <= stamp <= timezone.now()

    new_events = events_after(order, last)
    expected_types = [name]
    if name == "cancel" and had_money:
        expected_types.append(OrderEvent.Type.REFUND_REQUESTED)
    if name == "ship":  # the warehouse allocates and ships the parcel; the last unit out ships the order
        expected_types = [OrderEvent.Type.ALLOCATED, OrderEvent.Type.SHIPMENT_SHIPPED, name]
    assert [e.type for e in new_events] == expected_types
    event = next(e for e in new_events if e.type == name)
    assert (event.from_status, event.to_status) == (source, spec.target)
    assert event.actor_kind == actor.kind
    assert event.actor_label == actor.label
    assert event.actor_user_id == (actor.user.pk if actor.user else None)


@pytest.mark.parametrize(("name", "source"), REFUSED)
def test_refused_transition(name, source, order_in, staff_user):
    spec = SPECS[name]
    order = order_in(source, payment_method=spec.payment_method, cancel_reason=spec.cancel_reason)
    before = snapshot(order)

    with pytest.raises(InvalidTransition) as refused:
        run(name, order, actor_for(name, staff_user))

    assert refused.value.details["action"] == name
    assert refused.value.details["status"] == source
    assert snapshot(order) == before


@pytest.mark.parametrize(
    ("status", "cancel_reason"),
    [
        pytest.param(S.COMPLETED, CancelReason.CUSTOMER_CHANGED_MIND, id="completed"),
        pytest.param(S.CANCELLED, CancelReason.CUSTOMER_CHANGED_MIND, id="cancelled-changed_mind"),
        pytest.param(S.CANCELLED, CancelReason.TIMEOUT, id="cancelled-timeout"),
    ],
)
def test_terminal_states_accept_nothing_but_revive(status, cancel_reason, order_in, staff_user):
    order = order_in(status, cancel_reason=cancel_reason)
    before = snapshot(order)

    for name in SPECS:
        if name == "revive" and cancel_reason == CancelReason.TIMEOUT:
            continue  # the one way out of a terminal state, tested on its own
        with pytest.raises(InvalidTransition):
            run(name, order, actor_for(name, staff_user))
    with pytest.raises(InvalidTransition):
        services.order_change_address(order=order, actor=Actor.staff(staff_user), address={"detail": "文一路1号"})

    assert snapshot(order) == before


# --- pay and approve -------------------------------------------------------------


def test_pay_with_wrong_amount_is_refused(order_in):
    order = order_in(S.PENDING_PAYMENT)
    before = snapshot(order)

    with pytest.raises(ValidationFailed) as refused:
        services.order_pay(order=order, amount=order.payable_total - Decimal("0.01"), actor=GATEWAY)

    assert "amount" in refused.value.fields
    assert snapshot(order) == before


def test_pay_auto_approves_when_nothing_needs_review(order_in):
    order = order_in(S.PENDING_PAYMENT)
    assert order.review_flags == []
    last = last_event_id(order)

    services.order_pay(order=order, amount=order.payable_total, actor=GATEWAY)

    order.refresh_from_db()
    assert order.status == S.AWAITING_SHIPMENT
    assert order.paid_total == order.payable_total
    assert order.paid_at is not None
    assert order.approved_at is not None
    pay, approve = events_after(order, last)
    assert (pay.type, pay.from_status, pay.to_status) == ("pay", S.PENDING_PAYMENT, S.PAID)
    assert (pay.actor_kind, pay.actor_label) == (GATEWAY.kind, GATEWAY.label)
    assert (approve.type, approve.from_status, approve.to_status) == ("approve", S.PAID, S.AWAITING_SHIPMENT)
    assert (approve.actor_kind, approve.actor_label) == ("system", "auto_approve")


@pytest.fixture
def large_order(settings, order_in):
    settings.OMS_LARGE_ORDER_THRESHOLD = Decimal("100.00")  # 3 x 70.00 = 210.00 is "large"
    order = order_in(S.PENDING_PAYMENT)
    assert order.review_flags == [ReviewFlag.LARGE_AMOUNT]
    return order


def test_pay_of_a_large_order_stays_paid_for_review(large_order):
    last = last_event_id(large_order)

    services.order_pay(order=large_order, amount=large_order.payable_total, actor=GATEWAY)

    large_order.refresh_from_db()
    assert large_order.status == S.PAID
    assert large_order.approved_at is None
    assert large_order.review_flags == [ReviewFlag.LARGE_AMOUNT]
    assert [e.type for e in events_after(large_order, last)] == ["pay"]


@pytest.mark.parametrize("who, error", [("system", ReviewRequired), ("staff-without-permission", PermissionDenied)])
def test_approve_of_a_flagged_order_needs_a_reviewer(who, error, large_order, django_user_model):
    services.order_pay(order=large_order, amount=large_order.payable_total, actor=GATEWAY)
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    actor = Actor.system("auto_approve") if who == "system" else Actor.staff(clerk)
    before = snapshot(large_order)

    with pytest.raises(error):
        services.order_approve(order=large_order, actor=actor)

    assert snapshot(large_order) == before


def test_approve_of_a_flagged_order_by_a_reviewer_clears_the_flag(large_order, reviewer):
    services.order_pay(order=large_order, amount=large_order.payable_total, actor=GATEWAY)
    last = last_event_id(large_order)

    services.order_approve(order=large_order, actor=Actor.staff(reviewer))

    large_order.refresh_from_db()
    assert large_order.status == S.AWAITING_SHIPMENT
    assert large_order.review_flags == []
    assert large_order.approved_at is not None
    cleared, approve = events_after(large_order, last)
    assert cleared.type == OrderEvent.Type.REVIEW_CLEARED
    assert cleared.data["flags"] == [ReviewFlag.LARGE_AMOUNT]
    assert (approve.type, approve.from_status, approve.to_status) == ("approve", S.PAID, S.AWAITING_SHIPMENT)
    for event in (cleared, approve):
        assert (event.actor_kind, event.actor_label, event.actor_user_id) == ("staff", "reviewer", reviewer.pk)


# --- confirm_cod, ship, cancel ---------------------------------------------------


def test_confirm_cod_is_refused_for_an_order_not_paid_on_delivery(order_in, staff_user):
    order = order_in(S.PENDING_PAYMENT, payment_method=PaymentMethod.ALIPAY)
    before = snapshot(order)

    with pytest.raises(InvalidTransition):
        services.order_confirm_cod(order=order, actor=Actor.staff(staff_user))

    assert snapshot(order) == before


def test_ship_consumes_the_reserved_stock(order_in, staff_user):
    order = order_in(S.AWAITING_SHIPMENT)
    level = StockLevel.objects.get()
    assert (level.on_hand, level.reserved) == (100, QUANTITY)

    ship_whole_order(order, actor=Actor.staff(staff_user))

    level.refresh_from_db()
    assert (level.on_hand, level.reserved) == (100 - QUANTITY, 0)
    assert list(Reservation.objects.values_list("status", flat=True)) == [Reservation.Status.CONSUMED]
    order.refresh_from_db()
    (parcel,) = Shipment.objects.filter(lines__order_id=order.pk)
    assert (
        (order.carrier, order.tracking_no) == (parcel.carrier, parcel.tracking_no) == ("shunfeng", parcel.tracking_no)
    )


@pytest.mark.parametrize("source", BEFORE_SHIPMENT)
def test_cancel_releases_the_reservation(source, order_in, staff_user):
    order = order_in(source)
    assert reserved_units() == QUANTITY

    order_cancel(order=order, actor=Actor.staff(staff_user), reason=CancelReason.OUT_OF_STOCK)

    level = StockLevel.objects.get()
    assert (level.on_hand, level.reserved) == (100, 0)
    assert list(Reservation.objects.values_list("status", flat=True)) == [Reservation.Status.RELEASED]
    order.refresh_from_db()
    assert order.cancel_reason == CancelReason.OUT_OF_STOCK
    event = order.events.get(type="cancel")
    assert event.data["released_units"] == QUANTITY
    assert event.data["reason_code"] == CancelReason.OUT_OF_STOCK


@pytest.mark.parametrize("source", [S.PAID, S.AWAITING_SHIPMENT])
def test_cancel_of_a_paid_order_requests_a_full_refund(source, order_in, staff_user):
    order = order_in(source)
    assert order.paid_total == order.payable_total > 0
    actor = Actor.staff(staff_user)

    order_cancel(order=order, actor=actor, reason=CancelReason.CUSTOMER_CHANGED_MIND)

    refund = Refund.objects.get()
    assert refund.order_id == order.pk
    assert refund.amount == order.paid_total
    assert refund.out_refund_no == f"RF{order.order_no}C"
    assert refund.status == Refund.Status.REQUESTED
    assert refund.requested_by == actor.label
    event = order.events.get(type=OrderEvent.Type.REFUND_REQUESTED)
    assert event.data == {"out_refund_no": refund.out_refund_no, "amount": str(order.paid_total)}
    assert (event.actor_kind, event.actor_user_id) == ("staff", staff_user.pk)


@pytest.mark.parametrize(
    ("source", "payment_method"),
    [
        pytest.param(S.PENDING_PAYMENT, PaymentMethod.ALIPAY, id="pending-alipay"),
        pytest.param(S.PENDING_PAYMENT, PaymentMethod.COD, id="pending-cod"),
        # a confirmed cash-on-delivery order has not been paid either
        pytest.param(S.AWAITING_SHIPMENT, PaymentMethod.COD, id="awaiting_shipment-cod"),
    ],
)
def test_cancel_of_an_unpaid_order_gives_back_the_coupon_use(source, payment_method, order_in, staff_user):
    coupon = Coupon.objects.create(
        code="SAVE10", name="满100减10", kind=Coupon.Kind.THRESHOLD, threshold="100.00", reduction="10.00"
    )
    order = order_in(source, payment_method=payment_method, coupon_code=coupon.code)
    assert order.paid_total == 0
    assert order.coupon_id == coupon.pk
    coupon.refresh_from_db()
    assert coupon.used_count == 1

    order_cancel(order=order, actor=Actor.staff(staff_user), reason=CancelReason.CUSTOMER_CHANGED_MIND)

    coupon.refresh_from_db()
    assert coupon.used_count == 0
    assert not Refund.objects.exists()


def test_cancel_with_an_unknown_reason_is_refused(order_in, staff_user):
    order = order_in(S.PENDING_PAYMENT)
    before = snapshot(order)

    with pytest.raises(ValidationFailed) as refused:
        order_cancel(order=order, actor=Actor.staff(staff_user), reason="bored")

    assert "reason" in refused.value.fields
    assert snapshot(order) == before


# --- revive ----------------------------------------------------------------------


def test_revive_takes_the_stock_back_and_records_the_payment(order_in):
    order = order_in(S.CANCELLED, cancel_reason=CancelReason.TIMEOUT)
    assert reserved_units() == 0

    services.order_revive(order=order, amount=order.payable_total, actor=GATEWAY)

    order.refresh_from_db()
    assert order.status == S.PAID
    assert order.paid_total == order.payable_total
    assert order.cancelled_at is None
    assert reserved_units() == QUANTITY
    assert sorted(Reservation.objects.values_list("status", flat=True)) == [
        Reservation.Status.ACTIVE,
        Reservation.Status.RELEASED,
    ]


@pytest.mark.parametrize("reason", [r for r in CancelReason.values if r != CancelReason.TIMEOUT])
def test_revive_is_refused_unless_closed_by_timeout(reason, order_in):
    order = order_in(S.CANCELLED, cancel_reason=reason)
    before = snapshot(order)

    with pytest.raises(InvalidTransition):
        services.order_revive(order=order, amount=order.payable_total, actor=GATEWAY)

    assert snapshot(order) == before


def test_revive_is_refused_once_money_was_refunded(order_in, staff_user):
    order = order_in(S.PAID)
    order_cancel(order=order, actor=Actor.system("close_expired_orders"), reason=CancelReason.TIMEOUT)
    Order.objects.filter(pk=order.pk).update(refunded_total=F("paid_total"))  # the refund went through
    order.refresh_from_db()
    assert order.refunded_total > 0
    before = snapshot(order)

    with pytest.raises(InvalidTransition):
        services.order_revive(order=order, amount=order.payable_total, actor=GATEWAY)

    assert snapshot(order) == before


def test_revive_is_refused_while_a_refund_of_the_first_payment_is_pending(order_in, staff_user):
    """A paid order closed as "timeout" already has a refund on its way: reviving it would count
    the money twice (paid_total = 2 x payable) while the first payment is being sent back."""
    order = order_in(S.PAID)
    before_cancel = snapshot(order)
    try:
        order_cancel(order=order, actor=Actor.staff(staff_user), reason=CancelReason.TIMEOUT)
    except (ValidationFailed, InvalidTransition):
        # Refusing "timeout" for a paid order closes the hole just as well, if nothing moved.
        assert snapshot(order) == before_cancel
        assert Order.objects.get(pk=order.pk).status == S.PAID
    else:
        assert Refund.objects.filter(order=order).exists()
        order.refresh_from_db()
        assert (order.status, order.cancel_reason) == (S.CANCELLED, CancelReason.TIMEOUT)
        before = snapshot(order)

        with pytest.raises(InvalidTransition):
            services.order_revive(order=order, amount=order.payable_total, actor=GATEWAY)

        assert snapshot(order) == before


def test_revive_with_wrong_amount_is_refused(order_in):
    order = order_in(S.CANCELLED, cancel_reason=CancelReason.TIMEOUT)
    before = snapshot(order)

    with pytest.raises(ValidationFailed):
        services.order_revive(order=order, amount=order.payable_total + Decimal("1.00"), actor=GATEWAY)

    assert snapshot(order) == before
