"""Manual orders (手动录入): staff enter an order for an offline or phone customer.

The order goes through the same path as a storefront's (orders.services.order_create:
catalogue prices, stock reservation, idempotency on the external id), under the internal
storefront `manual` (a data migration makes it; it has no API key), with the entering
user in `Order.created_by`. review_flags_for gives it the `manual` flag (手动录入待复核),
so it never approves itself: a payment leaves it in 已付款, cash on delivery cannot be
confirmed, and order_approve refuses, until a **different** user with
orders.review_manual_order runs order_manual_approve (003 §2.1.3 双人复核).
"""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.errors import InvalidTransition, PermissionDenied, ValidationFailed

from .events import Actor, order_event_record
from .models import Order, OrderEvent, OrderStatus, OrderType, ReviewFlag, Storefront
from .review import MANUAL_STOREFRONT_CODE
from .services import OrderInput, _lock, _transition, order_create

# The data migration orders/0013_console makes the row with these; 运营 may change them.
MANUAL_PAYMENT_METHODS = ["bank_transfer", "cod"]


def manual_external_id() -> str:
    """A fresh id for one entry form: posting the same form twice gives the same order."""
    return f"M{timezone.localtime():%Y%m%d}{secrets.token_hex(6).upper()}"


def order_manual_create(
    *,
    user,
    external_id: str,
    payment_method: str,
    customer: dict[str, str],
    shipping_address: dict[str, str],
    lines: list[dict],
    remark: str = "",
) -> tuple[Order, bool]:
    """Enter an order by hand (orders.add_manual_order). Returns (order, created)."""
    actor = Actor.staff(user)
    actor.require("orders.add_manual_order")
    storefront, _created = Storefront.objects.get_or_create(
        code=MANUAL_STOREFRONT_CODE,
        defaults={"name": "手动录入", "allowed_payment_methods": MANUAL_PAYMENT_METHODS},
    )
    if not storefront.active:
        raise ValidationFailed(_("手动录入店铺（manual）已停用"))
    if not lines:
        raise ValidationFailed(fields={"lines": [_("请至少选择一件商品")]})
    payload = OrderInput(
        external_id=external_id,
        order_type=OrderType.NORMAL,
        payment_method=payment_method,
        customer=customer,
        shipping_address=shipping_address,
        lines=lines,
        remark=remark,
    )
    with transaction.atomic():
        order, created = order_create(storefront=storefront, payload=payload)
        if created:
            Order.objects.filter(pk=order.pk).update(created_by=user)
            order.created_by = user
    return order, created


def order_manual_approve(*, order: Order, actor: Actor, note: str = "") -> Order:
    """复核 a manual order: clear its `manual` flag, by orders.review_manual_order and never by
    the user who entered it (permission_denied, and nothing changes). A paid order with no
    other flag left is approved (审核通过) in the same step; other flags (large amount, a
    remark, ...) still wait for order_approve, and an unpaid order for its payment.
    """
    actor.require("orders.review_manual_order")
    with transaction.atomic():
        order = _lock(order)
        if ReviewFlag.MANUAL not in order.review_flags:
            raise InvalidTransition(_("该订单没有待复核的手动录入标记"), details={"action": "manual_approve"})
        if actor.user is None or order.created_by_id == actor.user.pk:
            raise PermissionDenied(
                _("手动录入的订单须由录入人以外的员工复核"), details={"permission": "orders.review_manual_order"}
            )
        order.review_flags = [flag for flag in order.review_flags if flag != ReviewFlag.MANUAL]
        order.save(update_fields=["review_flags", "updated_at"])
        order_event_record(
            order=order,
            type=OrderEvent.Type.REVIEW_CLEARED,
            actor=actor,
            flags=[ReviewFlag.MANUAL.value],
            note=note.strip()[:500],
            entered_by=order.created_by.get_username() if order.created_by_id else "",
        )
        if order.status == OrderStatus.PAID and not order.review_flags:
            _transition(order, "approve", actor, at=timezone.now())
    return order
