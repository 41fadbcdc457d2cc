"""Internal memos (备注订单): what staff learned about an order, for the next person.

A memo is append-only (never changed or deleted), appears on the order's timeline as a
`memo` event, and is never part of the storefront API.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from oms.errors import ValidationFailed

from .events import Actor, order_event_record
from .models import Order, OrderEvent, OrderMemo

MEMO_MAX_LENGTH = 2000


def order_memo_add(*, order: Order, user, text: str) -> OrderMemo:
    """Write a memo by `user` (orders.add_ordermemo). Any order, in any state, may get one."""
    actor = Actor.staff(user)
    actor.require("orders.add_ordermemo")
    text = (text or "").strip()
    if not text:
        raise ValidationFailed(fields={"text": [_("请填写备注内容")]})
    if len(text) > MEMO_MAX_LENGTH:
        raise ValidationFailed(fields={"text": [_("备注最多 %(n)d 个字") % {"n": MEMO_MAX_LENGTH}]})
    with transaction.atomic():
        memo = OrderMemo.objects.create(order=order, author=user, text=text)
        order_event_record(order=order, type=OrderEvent.Type.MEMO, actor=actor, memo_id=memo.pk, text=text)
    return memo
