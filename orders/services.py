"""Every write to an order goes through one of these functions.

Each opens a transaction, locks the order row, runs the django-fsm transition,
saves and writes the timeline event. Side effects that must not be lost (a refund
to execute, a message to send) are written as rows in the same transaction and
delivered after commit.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, Q, QuerySet, Subquery
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import can_proceed

from inventory.models import Sku
from inventory.services import (
    stock_lock_and_plan,
    stock_release,
    stock_release_for_orders,
    stock_reserve,
)
from oms.bulk import insert_new, new_ids, returning_supported, save_fields
from oms.errors import (
    CouponNotApplicable,
    CustomerRestricted,
    IdempotencyConflict,
    InvalidTransition,
    PriceMismatch,
    RefundRequired,
    ReviewRequired,
    ValidationFailed,
    require_permission,
)
from oms.jobs import enqueue_on_commit
from oms.prepared import PreparedQuery

from .events import (
    Actor,
    EventEntry,
    order_event_record,
    order_event_record_with_key,
    order_events_record_many,
    order_events_record_sequence,
)

# Actor and the event writers live in orders.events; they stay importable from here.
__all__ = ["Actor", "order_event_record", "order_events_record_many"]
from .models import (
    SYSTEM_CANCEL_REASONS,
    ZERO,
    ActorKind,
    CancelReason,
    Coupon,
    CustomerRiskFlag,
    FulfillmentStatus,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    PaymentMethod,
    PiiAccess,
    ReviewFlag,
    Storefront,
)
from .pii import PII_FIELDS
from .pricing import PricedLine, quote
from .review import review_flags_for
from .risk import customer_risk_refresh
from .selectors import transition_sources

ADDRESS_FIELDS = (
    "receiver",
    "receiver_phone",
    "province",
    "city",
    "district",
    "address_detail",
    "postcode",
)


@dataclass(frozen=True)
class OrderInput:
    """A storefront's order request after shape validation (see orders.api.serializers)."""

    external_id: str
    order_type: str
    payment_method: str
    customer: dict[str, str]
    shipping_address: dict[str, str]
    lines: list[dict[str, Any]]
    coupon_code: str = ""
    remark: str = ""
    expected_total: Decimal | None = None

    def fingerprint(self) -> str:
        body = {
            "external_id": self.external_id,
            "order_type": self.order_type,
            "payment_method": self.payment_method,
            "customer": self.customer,
            "shipping_address": self.shipping_address,
            "lines": self.lines,
            "coupon_code": self.coupon_code,
            "remark": self.remark,
            "expected_total": self.expected_total,
        }
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def payment_deadline_for(*, order_type: str, created: datetime) -> datetime:
    minutes = settings.OMS_PAYMENT_TIMEOUT_MINUTES[order_type]
    return created + timedelta(minutes=minutes)


def _new_order_no(now: datetime) -> str:
    # 8 date digits + 10 random digits: readable on the phone, unguessable, and a clash
    # (about once a day at 100k orders/day) is retried by order_create.
    return f"{timezone.localtime(now):%Y%m%d}{secrets.randbelow(10**10):010d}"


_ORDER_ID_BY_EXTERNAL_ID = PreparedQuery(
    lambda storefront_id, external_id: (
        Order.objects.filter(storefront_id=storefront_id, external_id=external_id)
        .order_by()
        .values_list("pk", flat=True)[:1]
    )
)
_CUSTOMER_FLAGGED = PreparedQuery(
    lambda mobile: CustomerRiskFlag.objects.filter(mobile=mobile, active=True).order_by().values_list("pk")[:1]
)


# The three reads above in one statement, for the usual post (a new order of known SKUs): each
# SKU row carries the storefront's order with this external_id, if any, and the customer's flag.
# On PostgreSQL it also draws the keys of the order, its event and its lines, so the three
# INSERTs need not read them back and travel together (oms.bulk.insert_new, defer=True).
def _skus_and_context(storefront_id, external_id, mobile, codes):
    queryset = (
        Sku.objects.filter(code__in=codes)
        .order_by()
        .annotate(
            existing_order_id=Subquery(
                Order.objects.filter(storefront_id=storefront_id, external_id=external_id).order_by().values("pk")[:1]
            ),
            customer_flagged=Exists(CustomerRiskFlag.objects.filter(mobile=mobile, active=True)),
        )
    )
    if connection.vendor == "postgresql":
        queryset = queryset.annotate(
            new_order_ids=new_ids(Order), new_event_ids=new_ids(OrderEvent), new_line_ids=new_ids(OrderLine, len(codes))
        )
    return queryset


_SKUS_AND_CONTEXT = PreparedQuery(_skus_and_context)


def _existing_order(*, storefront: Storefront, external_id: str) -> Order | None:
    """The storefront's order with this external_id, by the unique index: no ORDER BY, no scan.

    Almost every post is a new order, so the check asks for the id alone (a one-column query
    is a fraction of the cost of building and reading the order's sixty); a replay reads the
    order by that id.
    """
    found = _ORDER_ID_BY_EXTERNAL_ID.rows(storefront_id=storefront.pk, external_id=external_id)
    return Order.objects.get(pk=found[0][0]) if found else None


def _check_replay(*, existing: Order, payload: OrderInput) -> Order:
    if existing.request_fingerprint != payload.fingerprint():
        raise IdempotencyConflict(details={"order_no": existing.order_no})
    return existing


@dataclass(frozen=True)
class _Keys:
    """Primary keys drawn for a new order's rows before its transaction (PostgreSQL)."""

    order: int
    event: int
    lines: list[int]


@dataclass(frozen=True)
class _Context:
    existing_order_id: int | None
    customer_flagged: bool
    skus: dict[str, Sku]  # by code, those of the order's codes that exist
    keys: _Keys | None = None


def _read_context(*, storefront: Storefront, payload: OrderInput) -> _Context:
    """What order_create reads before deciding: one statement when any of the SKUs exists."""
    mobile = payload.customer["mobile"]
    codes = [line["sku"] for line in payload.lines]
    skus = (
        _SKUS_AND_CONTEXT.objects(
            storefront_id=storefront.pk, external_id=payload.external_id, mobile=mobile, codes=codes
        )
        if codes
        else []
    )
    if skus:
        first = skus[0]
        keys = None
        if hasattr(first, "new_order_ids"):
            keys = _Keys(order=first.new_order_ids[0], event=first.new_event_ids[0], lines=first.new_line_ids)
        return _Context(first.existing_order_id, first.customer_flagged, {sku.code: sku for sku in skus}, keys)
    found = _ORDER_ID_BY_EXTERNAL_ID.rows(storefront_id=storefront.pk, external_id=payload.external_id)
    return _Context(found[0][0] if found else None, bool(_CUSTOMER_FLAGGED.rows(mobile=mobile)), {})


def _resolve_skus(payload: OrderInput, found: dict[str, Sku]) -> list[Sku]:
    codes = [line["sku"] for line in payload.lines]
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    for index, code in enumerate(codes):
        field = f"lines[{index}].sku"
        if code in seen:
            errors[field] = [_("同一订单中重复的 SKU，请合并为一行")]
        elif code not in found:
            errors[field] = [_("未知的 SKU：%(code)s") % {"code": code}]
        elif not found[code].active:
            errors[field] = [_("SKU 已下架：%(code)s") % {"code": code}]
        seen.add(code)
    if errors:
        raise ValidationFailed(fields=errors)
    return [found[code] for code in codes]


def _resolve_coupon(code: str) -> Coupon | None:
    if not code:
        return None
    coupon = Coupon.objects.filter(code=code).first()
    if coupon is None:
        raise CouponNotApplicable(
            _("优惠券不存在"),
            details={"reason": "unknown"},
            fields={"coupon_code": [_("优惠券不存在")]},
        )
    return coupon


def _redeem_coupon(coupon: Coupon) -> None:
    """Count one use, atomically; the conditional UPDATE cannot overshoot the limit."""
    used = Coupon.objects.filter(
        Q(usage_limit__isnull=True) | Q(used_count__lt=F("usage_limit")),
        pk=coupon.pk,
        active=True,
    ).update(used_count=F("used_count") + 1)
    if not used:
        raise CouponNotApplicable(_("优惠券已被领完"), details={"reason": "used_up"})


def order_create(*, storefront: Storefront, payload: OrderInput, now: datetime | None = None) -> tuple[Order, bool]:
    """Price, reserve stock and create an order. Returns (order, created).

    Idempotent on (storefront, external_id): the same body returns the existing order,
    a different body raises IdempotencyConflict. The number of queries does not grow
    with the number of lines.
    """
    context = _read_context(storefront=storefront, payload=payload)
    if context.existing_order_id is not None:
        return _check_replay(existing=Order.objects.get(pk=context.existing_order_id), payload=payload), False

    if payload.payment_method not in storefront.allowed_payment_methods:
        raise ValidationFailed(fields={"payment_method": [_("本店铺不支持该支付方式")]})
    # The flag serves both: a flagged customer may not use COD, and gets the risk review flag.
    customer_flagged = context.customer_flagged
    if payload.payment_method == PaymentMethod.COD and customer_flagged:
        raise CustomerRestricted(details={"customer.mobile": payload.customer["mobile"]})
    skus = _resolve_skus(payload, context.skus)
    coupon = _resolve_coupon(payload.coupon_code)
    now = now or timezone.now()
    priced = quote(
        lines=[
            PricedLine(unit_price=sku.price, quantity=line["quantity"])
            for sku, line in zip(skus, payload.lines, strict=True)
        ],
        coupon=coupon,
        now=now,
        shipping_fee=settings.OMS_SHIPPING_FEE,
        free_shipping_threshold=settings.OMS_FREE_SHIPPING_THRESHOLD,
    )
    if payload.expected_total is not None and payload.expected_total != priced.payable_total:
        raise PriceMismatch(details=priced.breakdown())

    for attempt in range(3):
        try:
            return _order_insert(
                storefront=storefront,
                payload=payload,
                skus=skus,
                coupon=coupon,
                priced=priced,
                now=now,
                customer_flagged=customer_flagged,
                keys=context.keys,
            ), True
        except IntegrityError:
            existing = _existing_order(storefront=storefront, external_id=payload.external_id)
            if existing is not None:  # a concurrent identical post won the race
                return _check_replay(existing=existing, payload=payload), False
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _order_insert(
    *,
    storefront,
    payload: OrderInput,
    skus: list[Sku],
    coupon,
    priced,
    now,
    customer_flagged: bool = False,
    keys: _Keys | None = None,
) -> Order:
    customer, address = payload.customer, payload.shipping_address
    # The order, its lines and its event are written first, and the shared rows (stock, then
    # the coupon) locked last: every order of a flash sale queues on the same few stock rows,
    # and each holds them only for the reservation, not for the whole insert. With keys drawn
    # beforehand (PostgreSQL), the three INSERTs are deferred and travel in one message with
    # the stock rows' lock, and the stock UPDATE with the reservations' INSERT.
    with transaction.atomic():
        review_flags = review_flags_for(
            storefront_code=storefront.code,
            remark=payload.remark,
            address=address,
            payable_total=priced.payable_total,
            customer_flagged=customer_flagged,
        )
        order = Order(
            pk=keys.order if keys else None,
            order_no=_new_order_no(now),
            storefront=storefront,
            external_id=payload.external_id,
            request_fingerprint=payload.fingerprint(),
            order_type=payload.order_type,
            payment_method=payload.payment_method,
            customer_name=customer["name"],
            customer_mobile=customer["mobile"],
            customer_email=customer.get("email", ""),
            customer_member_id=customer.get("member_id", ""),
            receiver=address["receiver"],
            receiver_phone=address["phone"],
            province=address["province"],
            city=address["city"],
            district=address["district"],
            address_detail=address["detail"],
            postcode=address.get("postcode", ""),
            goods_total=priced.goods_total,
            shipping_fee=priced.shipping_fee,
            discount_total=priced.discount_total,
            payable_total=priced.payable_total,
            coupon=coupon,
            payment_deadline=payment_deadline_for(order_type=payload.order_type, created=now),
            remark=payload.remark,
            review_flags=review_flags,
        )
        insert_new([order], defer=True)
        line_keys = keys.lines if keys else [None] * len(skus)
        lines = [
            OrderLine(
                pk=line_key,
                order=order,
                sku=sku,
                sku_code=sku.code,
                name=sku.name,
                spec=sku.spec,
                unit_price=sku.price,
                quantity=line["quantity"],
                line_total=sku.price * line["quantity"],
                discount=share,
            )
            for sku, line, share, line_key in zip(skus, payload.lines, priced.line_discounts, line_keys, strict=True)
        ]
        insert_new(lines, defer=True)
        order_event_record_with_key(
            order=order,
            event_id=keys.event if keys else None,
            type=OrderEvent.Type.CREATED,
            actor=Actor.storefront(storefront),
            to_status=order.status,
            **priced.breakdown(),
            review_flags=review_flags,
        )
        plan = stock_lock_and_plan(
            demand={sku: line["quantity"] for sku, line in zip(skus, payload.lines, strict=True)}
        )
        stock_reserve(plan=plan, line_ids_by_sku={line.sku_id: line.pk for line in lines})
        if coupon is not None:
            _redeem_coupon(coupon)
    _remember_related(order, "lines", lines)
    return order


def _remember_related(order: Order, relation: str, objects: list) -> None:
    """Store `objects` as `order.<relation>`, exactly as prefetch_related would have.

    A new order's relations are known when it is created (its lines are the ones just
    written; it has no payments or shipments yet), so the answer to the storefront is built
    without reading them back. Give a relation added to the order answer its known value
    here too, e.g. `_remember_related(order, "shipments", [])`.
    """
    queryset = getattr(order, relation).get_queryset()
    queryset._result_cache = list(objects)
    queryset._prefetch_done = True
    order.__dict__.setdefault("_prefetched_objects_cache", {})[relation] = queryset


# --- transitions --------------------------------------------------------------


def _lock(order: Order) -> Order:
    return Order.objects.select_for_update().get(pk=order.pk)


def _require(order: Order, action: str) -> None:
    method = getattr(order, action)
    if not can_proceed(method, check_conditions=False):
        raise InvalidTransition(
            _("订单当前状态为「%(status)s」，不能执行此操作") % {"status": order.get_status_display()},
            details={"status": order.status, "action": action},
        )


def _transition(
    order: Order,
    action: str,
    actor: Actor,
    *,
    event_reason: str = "",
    event_data=None,
    **kwargs,
) -> Order:
    entry = _step(order, action, actor, event_reason=event_reason, event_data=event_data, **kwargs)
    return _save_transitions(order, [entry])


def _save_transitions(order: Order, entries: list[EventEntry], *, update_fields: list[str] | None = None) -> Order:
    """Write transitions already run in memory (_step): the order row, then their events.

    The one place both paths end (one transition by _transition, or several at once as in
    order_pay): whatever must follow every transition belongs here, not in _transition.
    """
    if update_fields is None:
        order.save()
    else:
        save_fields(order, update_fields)  # save(update_fields=...), its statement kept
    if len(entries) == 1:
        (entry,) = entries
        order_event_record(
            order=order,
            type=entry.type,
            actor=entry.actor,
            from_status=entry.from_status,
            to_status=entry.to_status,
            reason=entry.reason,
            **(entry.data or {}),
        )
    else:
        order_events_record_sequence(order=order, entries=entries)
    if order.status == OrderStatus.AWAITING_SHIPMENT and settings.OMS_RELEASE_DELAY_MINUTES == 0:
        # 待发货: fulfillment allocates it to warehouses (its clock catches a lost message, and
        # with a release delay it is the clock that allocates).
        enqueue_on_commit("fulfillment.tasks.allocate_order", order.pk)
    return order


def order_pay(
    *,
    order: Order,
    amount: Decimal,
    actor: Actor,
    at: datetime | None = None,
    auto_approve: bool = True,
    locked: bool = False,
    **data,
) -> Order:
    """Record that the payable amount arrived. Callers (payment reconciliation) have verified it.

    Paid and, when nothing needs review, approved: both transitions are one UPDATE of the
    fields they changed and one INSERT of their two events. `locked=True` says the caller
    already holds the order's row lock in its transaction and passes the order as it read it
    under that lock (payments.services.money.lock_order): it is not read again, it is checked
    before anything is written (a refusal leaves the caller's transaction usable), and the
    writes join that transaction without a savepoint.
    """
    if locked:
        _check_payable(order, amount)
        with transaction.atomic(savepoint=False):
            return _pay_and_approve(order, amount, actor, at=at, auto_approve=auto_approve, **data)
    with transaction.atomic():
        order = _lock(order)
        _check_payable(order, amount)
        return _pay_and_approve(order, amount, actor, at=at, auto_approve=auto_approve, **data)


def _check_payable(order: Order, amount: Decimal) -> None:
    _require(order, "pay")
    if amount != order.payable_total:
        raise ValidationFailed(
            _("到账金额与应付金额不一致"),
            fields={"amount": [_("应付 %(p)s，到账 %(a)s") % {"p": order.payable_total, "a": amount}]},
        )


def _pay_and_approve(order: Order, amount: Decimal, actor: Actor, *, at, auto_approve: bool, **data) -> Order:
    unchanged = _field_values(order)
    entries = [
        _step(order, "pay", actor, event_data={"amount": str(amount), **data}, amount=amount, at=at or timezone.now())
    ]
    if auto_approve and not order.review_flags:
        entries.append(_step(order, "approve", Actor.system("auto_approve"), at=timezone.now()))
    changed = [name for name, value in unchanged.items() if getattr(order, name) != value]
    return _save_transitions(order, entries, update_fields=[*changed, "updated_at"])


def _field_values(order: Order) -> dict[str, Any]:
    return {field.attname: getattr(order, field.attname) for field in Order._meta.concrete_fields}


def _step(order: Order, action: str, actor: Actor, *, event_reason: str = "", event_data=None, **kwargs) -> EventEntry:
    """Run one transition in memory (checked like _transition) and return its timeline entry; the caller saves."""
    from_status = order.status
    _require(order, action)
    if not can_proceed(getattr(order, action)):
        raise InvalidTransition(details={"status": order.status, "action": action, "condition": "unmet"})
    getattr(order, action)(**kwargs)
    return EventEntry(
        type=action,
        actor=actor,
        from_status=from_status,
        to_status=order.status,
        reason=event_reason,
        data=event_data or {},
    )


def order_money_record(*, order: Order, received: Decimal = ZERO, refunded: Decimal = ZERO) -> Order:
    """The one writer of an order's money columns outside the pay and revive transitions.

    `received` is money that arrived without moving the order (a late or second payment,
    cash collected on delivery); `refunded` is money that went back. The caller holds the
    order's row lock, inside its transaction; `order` is updated in memory too.
    """
    Order.objects.filter(pk=order.pk).update(
        paid_total=F("paid_total") + received, refunded_total=F("refunded_total") + refunded
    )
    order.paid_total += received
    order.refunded_total += refunded
    return order


def order_approve(*, order: Order, actor: Actor, note: str = "") -> Order:
    """审核通过. Staff need orders.review_order; an order with review flags can only be approved
    by such a staff user (a system job gets review_required), who may leave a note on the
    REVIEW_CLEARED event. A manual order's 待复核 flag is not cleared here: a second person
    clears it first with orders.manual.order_manual_approve.
    """
    actor.require("orders.review_order")
    with transaction.atomic():
        order = _lock(order)
        _require(order, "approve")
        _review_flags_clear(order=order, actor=actor, note=note)
        return _transition(order, "approve", actor, at=timezone.now())


def _review_flags_clear(*, order: Order, actor: Actor, note: str = "") -> None:
    """A person read the order: clear its open review flags with a REVIEW_CLEARED event.
    The caller holds the order's lock. The manual-entry flag is refused: only
    order_manual_approve, by someone other than the one who entered it, clears that.
    """
    if not order.review_flags:
        return
    if ReviewFlag.MANUAL in order.review_flags:
        raise ReviewRequired(
            _("手动录入的订单须先由录入人以外的员工复核"), details={"review_flags": order.review_flags}
        )
    user = actor.user
    if user is None or not user.has_perm("orders.review_order"):
        raise ReviewRequired(details={"review_flags": order.review_flags})
    cleared = list(order.review_flags)
    order.review_flags = []
    order.save(update_fields=["review_flags", "updated_at"])
    order_event_record(
        order=order,
        type=OrderEvent.Type.REVIEW_CLEARED,
        actor=actor,
        flags=cleared,
        note=note.strip()[:500],
    )


def order_confirm_cod(*, order: Order, actor: Actor, note: str = "") -> Order:
    """货到付款核实: customer service verified a cash-on-delivery order by phone. The call is the
    review too: open review flags are cleared (it needs orders.review_order then), except a
    manual order's, which waits for its second reviewer.
    """
    actor.require("orders.confirm_cod")
    with transaction.atomic():
        order = _lock(order)
        _require(order, "confirm_cod")
        _review_flags_clear(order=order, actor=actor, note=note)
        return _transition(order, "confirm_cod", actor, at=timezone.now())


def orders_lock(*, order_ids: list[int]) -> list[Order]:
    """Lock several orders in primary-key order (fulfillment and merged parcels touch many)."""
    return list(Order.objects.select_for_update().filter(pk__in=order_ids).order_by("pk"))


def order_fulfillment_record(
    *,
    order: Order,
    actor: Actor,
    fulfillment_status: str,
    carrier: str = "",
    tracking_no: str = "",
    delivered_at: datetime | None = None,
) -> Order:
    """Fulfillment tells the order where its units are. The caller holds the order's row lock.

    `shipped` moves a 待发货 order to 已发货 (the ship transition, with its event);
    `delivered` sets delivered_at, from which the receipt auto-confirmation counts. The
    order keeps the last parcel's carrier and tracking number for a one-line answer.
    """
    fields = ["fulfillment_status", "updated_at"]
    order.fulfillment_status = fulfillment_status
    if carrier:
        order.carrier, order.tracking_no = carrier, tracking_no
        fields += ["carrier", "tracking_no"]
    if fulfillment_status == FulfillmentStatus.DELIVERED and delivered_at and order.delivered_at is None:
        order.delivered_at = delivered_at
        fields.append("delivered_at")
        order_event_record(
            order=order, type=OrderEvent.Type.DELIVERED, actor=actor, delivered_at=delivered_at.isoformat()
        )
    order.save(update_fields=fields)
    if (
        fulfillment_status in (FulfillmentStatus.SHIPPED, FulfillmentStatus.DELIVERED)
        and order.status == OrderStatus.AWAITING_SHIPMENT
    ):
        return order_mark_shipped(order=order, actor=actor)
    return order


def order_mark_shipped(*, order: Order, actor: Actor) -> Order:
    """已发货: every unit of the order is in a parcel that left, or cancelled. Fulfillment calls
    this (through order_fulfillment_record) with the order locked; anything else is refused.
    """
    with transaction.atomic():
        locked = _lock(order)
        _require(locked, "ship")
        _transition(
            locked,
            "ship",
            actor,
            event_data={"carrier": locked.carrier, "tracking_no": locked.tracking_no},
            at=timezone.now(),
        )
    order.refresh_from_db(fields=["status", "shipped_at", "updated_at"])
    return order


def order_lines_cancel_units(*, order: Order, quantities: dict[int, int]) -> Order:
    """Units of lines that will never ship (refunded before shipment). The caller holds the lock."""
    lines = {line.pk: line for line in order.lines.filter(pk__in=list(quantities))}
    for line_id, qty in quantities.items():
        line = lines[line_id]
        if qty < 0 or line.cancelled_quantity + qty > line.quantity:
            raise ValidationFailed(fields={"quantity": [_("取消数量超过订单行数量")]})
        line.cancelled_quantity += qty
    OrderLine.objects.bulk_update(list(lines.values()), ["cancelled_quantity"])
    return order


def order_aftersale_mark(*, order: Order, open: bool) -> Order:
    """After-sales says whether a request is open on the order (it holds the receipt confirmation)."""
    if order.aftersale_open != open:
        Order.objects.filter(pk=order.pk).update(aftersale_open=open, updated_at=timezone.now())
        order.aftersale_open = open
    return order


def order_cancel_refused(*, order: Order, actor: Actor, now: datetime | None = None) -> Order:
    """拒收退回: a cash-on-delivery parcel came back refused with nothing collected. The order is
    cancelled with reason `refused`, and the refusal counts toward the customer's risk flag.
    The caller (fulfillment) has put the units back in stock and holds the order's lock.
    """
    now = now or timezone.now()
    _transition(
        order,
        "cancel_refused",
        actor,
        event_reason=str(CancelReason.REFUSED.label),
        event_data={"reason_code": CancelReason.REFUSED.value},
        at=now,
    )
    customer_risk_refresh(mobiles={order.customer_mobile}, now=now)
    return order


def order_complete(*, order: Order, actor: Actor) -> Order:
    """确认收货, by the customer or by the receipt-confirmation job (or staff, for the customer)."""
    actor.require("orders.complete_order")
    with transaction.atomic():
        order = _lock(order)
        _require(order, "complete")
        return _transition(order, "complete", actor, at=timezone.now())


def order_cancel(*, order: Order, actor: Actor, reason: str, note: str = "", refund_follows: bool = False) -> Order:
    """The order's side of a cancellation, before anything ships: the transition, the stock
    released, the coupon use given back (only if nothing was paid).

    An order that received money is cancelled only together with its refund: that is
    workflows.cancellation.order_cancel, which requests the refund in the same transaction
    and says so with `refund_follows=True`. Called alone on such an order this refuses
    (RefundRequired) rather than keep the customer's money without a refund.
    """
    actor.require("orders.cancel_order")
    if reason not in CancelReason.values or (actor.kind != ActorKind.SYSTEM and reason in SYSTEM_CANCEL_REASONS):
        raise ValidationFailed(fields={"reason": [_("无效的取消原因")]})
    with transaction.atomic():
        order = _lock(order)
        _require(order, "cancel")
        if order.fulfillment_status != FulfillmentStatus.UNFULFILLED:
            raise InvalidTransition(
                _("订单已有包裹发出，不能整单取消，请走售后"),
                details={"status": order.status, "fulfillment_status": order.fulfillment_status, "action": "cancel"},
            )
        was_unpaid = order.paid_total == ZERO  # also a confirmed cash-on-delivery order
        if not was_unpaid and not refund_follows:
            raise RefundRequired(details={"paid_total": str(order.paid_total)})
        released = stock_release(order_line_ids=order.lines.values_list("pk", flat=True))
        if order.coupon_id and was_unpaid:
            Coupon.objects.filter(pk=order.coupon_id, used_count__gt=0).update(used_count=F("used_count") - 1)
        _transition(
            order,
            "cancel",
            actor,
            event_reason=str(CancelReason(reason).label),
            event_data={
                "reason_code": reason,
                "note": note,
                "released_units": released,
            },
            reason=reason,
            note=note,
            at=timezone.now(),
        )
    return order


def order_revive(*, order: Order, amount: Decimal, actor: Actor, **data) -> Order:
    """A late payment for an order closed by timeout: take it back if the stock is still there."""
    with transaction.atomic():
        order = _lock(order)
        _require(order, "revive")
        if amount != order.payable_total:
            raise ValidationFailed(fields={"amount": [_("到账金额与应付金额不一致")]})
        lines = list(order.lines.select_related("sku"))
        plan = stock_lock_and_plan(demand={line.sku: line.quantity for line in lines})
        stock_reserve(plan=plan, line_ids_by_sku={line.sku_id: line.pk for line in lines})
        _transition(
            order,
            "revive",
            actor,
            event_data={"amount": str(amount), **data},
            amount=amount,
            at=timezone.now(),
        )
    return order


def order_change_address(*, order: Order, actor: Actor, address: dict[str, str]) -> Order:
    """Change some or all of the shipping address before shipment.

    `address` uses the API names (receiver, phone, province, city, district, detail, postcode);
    fields not given keep their values. The old and new values go on the timeline.
    """
    actor.require("orders.change_address")
    with transaction.atomic():
        order = _lock(order)
        if not order.is_before_shipment or order.fulfillment_status != FulfillmentStatus.UNFULFILLED:
            raise InvalidTransition(
                _("订单已发货或已结束，不能修改地址"),
                details={"status": order.status, "action": "change_address"},
            )
        api_names = {"phone": "receiver_phone", "detail": "address_detail"}
        mapping = {api_names.get(key, key): value for key, value in address.items()}
        if not mapping:
            raise ValidationFailed(fields={"non_field_errors": [_("请至少提供一个地址字段")]})
        unknown = set(mapping) - set(ADDRESS_FIELDS)
        if unknown:
            raise ValidationFailed(fields={name: [_("未知字段")] for name in sorted(unknown)})
        old = {name: getattr(order, name) for name in mapping}
        for name, value in mapping.items():
            setattr(order, name, value)
        order.save(update_fields=[*mapping, "updated_at"])
        order_event_record(
            order=order,
            type=OrderEvent.Type.ADDRESS_CHANGED,
            actor=actor,
            old=old,
            new=mapping,
        )
    return order


def order_reveal_pii(*, order: Order, user) -> dict[str, str]:
    """Show one order's full mobile numbers and street address to a staff user who may see
    them (orders.view_customer_pii), and record who looked, at which order, and when.
    """
    require_permission(user, "orders.view_customer_pii")
    PiiAccess.objects.create(order=order, user=user)
    return {name: getattr(order, name) for name in PII_FIELDS}


# --- the clock: timeout close, receipt confirmation, risk ----------------------------


def orders_close_timed_out(
    *,
    candidates: QuerySet[Order],
    now: datetime,
    batch_size: int,
    on_closed: Callable[[list[int]], object] | None = None,
) -> list[int]:
    """Close one batch of unpaid orders past their deadline; returns the ids closed.

    `candidates` is orders.selectors.orders_past_deadline, narrowed by the caller (the
    workflow leaves out orders with money or an open gateway attempt). Rows are claimed
    with FOR UPDATE SKIP LOCKED (an order being paid right now is skipped, not waited for)
    by the one UPDATE that closes them; then one UPDATE per coupon, one INSERT for the
    events, the risk flags, `on_closed(ids)` (the caller's part of the close, e.g. the
    closed-order notice, in the same transaction), and last the set-based stock release, so
    the hot stock rows stay locked for as short a time as possible. Joins the caller's
    transaction without a savepoint.
    """
    sources = transition_sources(Order.cancel) & {OrderStatus.PENDING_PAYMENT}
    batch = candidates.filter(status__in=sources).select_for_update(skip_locked=True).order_by("payment_deadline")
    with transaction.atomic(savepoint=False):
        if returning_supported():
            # Claimed and closed in one statement, which returns what the rest of the batch needs
            # (customers, coupons): the rows are neither read twice nor looked up again by id.
            claim, claim_params = batch.values("pk")[:batch_size].query.sql_with_params()
            quote = connection.ops.quote_name
            at = Order._meta.get_field("cancelled_at").get_db_prep_save(now, connection)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {quote(Order._meta.db_table)} SET {quote('status')} = %s, {quote('cancel_reason')} = %s,"
                    f" {quote('cancelled_at')} = %s, {quote('updated_at')} = %s WHERE {quote('id')} IN ({claim})"
                    f" RETURNING {quote('id')}, {quote('customer_mobile')}, {quote('coupon_id')}",
                    [OrderStatus.CANCELLED.value, CancelReason.TIMEOUT.value, at, at, *claim_params],
                )
                claimed = cursor.fetchall()
        else:
            claimed = list(batch.values_list("pk", "customer_mobile", "coupon_id")[:batch_size])
            Order.objects.filter(pk__in=[pk for pk, _mobile, _coupon in claimed]).update(
                status=OrderStatus.CANCELLED, cancel_reason=CancelReason.TIMEOUT, cancelled_at=now, updated_at=now
            )
        if not claimed:
            return []
        ids = [pk for pk, _mobile, _coupon in claimed]
        coupons = Counter(coupon_id for _pk, _mobile, coupon_id in claimed if coupon_id is not None)
        for coupon_id, uses in sorted(coupons.items()):
            Coupon.objects.filter(pk=coupon_id).update(used_count=Greatest(F("used_count") - uses, 0))
        order_events_record_many(
            order_ids=ids,
            type=OrderEvent.Type.CANCEL,
            actor=Actor.system("close_expired_orders"),
            from_status=OrderStatus.PENDING_PAYMENT,
            to_status=OrderStatus.CANCELLED,
            reason=str(CancelReason.TIMEOUT.label),
            reason_code=CancelReason.TIMEOUT.value,
        )
        customer_risk_refresh(mobiles={mobile for _pk, mobile, _coupon in claimed}, now=now)
        if on_closed is not None:
            on_closed(ids)
        stock_release_for_orders(order_ids=ids)
    return ids


def order_confirm_receipt_overdue(
    *, now: datetime | None = None, batch_size: int = 200, max_batches: int = 10, held: Exists | None = None
) -> int:
    """自动确认收货: complete shipped orders OMS_AUTO_CONFIRM_DAYS_AFTER_SHIPMENT days after
    shipment, or OMS_AUTO_CONFIRM_DAYS_AFTER_DELIVERY days after delivery, whichever is first.

    An open after-sales request holds an order; so does `held`, a condition on the order that
    a layer above adds (workflows.receipt: an open logistics case on one of its parcels).
    """
    now = now or timezone.now()
    due = (
        Order.objects.filter(status=OrderStatus.SHIPPED, aftersale_open=False)  # a request holds it
        .exclude(
            payment_method=PaymentMethod.COD,
            paid_total=ZERO,  # a COD order completes only once collected
        )
        .filter(
            Q(shipped_at__lte=now - timedelta(days=settings.OMS_AUTO_CONFIRM_DAYS_AFTER_SHIPMENT))
            | Q(delivered_at__lte=now - timedelta(days=settings.OMS_AUTO_CONFIRM_DAYS_AFTER_DELIVERY))
        )
    )
    if held is not None:
        due = due.filter(~held)
    actor = Actor.system("confirm_receipt_overdue")
    done = 0
    for _batch in range(max_batches):
        with transaction.atomic():
            orders = list(due.select_for_update(skip_locked=True).order_by("shipped_at")[:batch_size])
            for order in orders:
                _transition(order, "complete", actor, event_reason=str(_("超时自动确认收货")), at=now)
        done += len(orders)
        if len(orders) < batch_size:
            break
    return done
