"""Money that does not come through a gateway: bank transfers (对公转账) and cash on delivery."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.errors import InvalidTransition, require_permission
from orders.models import Order, OrderStatus
from orders.services import Actor, order_pay

from ..models import (
    BankTransfer,
    Channel,
    Payment,
    ReconciliationCase,
)
from .cases import case_open
from .money import lock_order, record_extra_money

logger = logging.getLogger(__name__)
CaseType = ReconciliationCase.Type


# --- bank transfer and cash on delivery ----------------------------------------------

ORDER_NO_IN_TEXT = re.compile(r"(?<![0-9])([0-9]{18})(?![0-9])")


def bank_transfer_record(
    *, payer: str, amount: Decimal, remark: str, received_at: datetime, bank_reference: str, user=None
) -> BankTransfer:
    """对公转账: match by the order number in the remark and the exact amount; else a case.
    Finance records it (payments.record_offline_payment); a bank import passes no user.
    """
    if user is not None:
        require_permission(user, "payments.record_offline_payment")
    with transaction.atomic():
        if BankTransfer.objects.filter(bank_reference=bank_reference).exists():
            return BankTransfer.objects.get(bank_reference=bank_reference)
        numbers = ORDER_NO_IN_TEXT.findall(remark or "")
        candidates = list(Order.objects.filter(order_no__in=numbers).values_list("pk", flat=True))
        transfer = BankTransfer(
            payer=payer,
            amount=amount,
            remark=remark,
            received_at=received_at,
            bank_reference=bank_reference,
            recorded_by=user,
            status=BankTransfer.Status.UNMATCHED,
        )
        problem = ""
        if len(candidates) != 1:
            problem = _("附言中没有唯一的订单号") if not candidates else _("附言中有多个订单号")
        else:
            order = lock_order(candidates[0])
            if order.status != OrderStatus.PENDING_PAYMENT:
                problem = _("订单 %(no)s 不在待付款状态") % {"no": order.order_no}
            elif amount != order.payable_total:
                problem = _("金额不符：应付 %(e)s，到账 %(a)s") % {"e": order.payable_total, "a": amount}
            else:
                payment = Payment.objects.create(
                    order=order,
                    channel=Channel.BANK_TRANSFER,
                    out_trade_no=f"BT{bank_reference}"[:64],
                    amount=amount,
                )
                payment.succeed(trade_no=bank_reference, at=received_at)
                payment.save()
                transfer.payment = payment
                transfer.status = BankTransfer.Status.MATCHED
                actor = Actor.staff(user) if user is not None else Actor.system("bank_transfer")
                order_pay(order=order, amount=amount, actor=actor, at=received_at, bank_reference=bank_reference)
        transfer.save()
        if problem:
            case_open(
                type=CaseType.UNMATCHED_TRANSFER,
                dedupe_key=f"transfer:{bank_reference}",
                summary=_("未匹配的对公转账：%(p)s %(a)s 元，%(why)s") % {"p": payer, "a": amount, "why": problem},
                channel=Channel.BANK_TRANSFER,
                actual_amount=amount,
                payer=payer,
                remark=remark,
                bank_reference=bank_reference,
            )
    return transfer


def cod_collect(*, order: Order, amount: Decimal, actor: Actor, at: datetime | None = None) -> Payment:
    """货到付款: the carrier collected the money on delivery. Counted as a payment."""
    actor.require("payments.record_offline_payment")
    at = at or timezone.now()
    with transaction.atomic():
        order = lock_order(order.pk)
        if order.payment_method != Channel.COD or order.status not in (
            OrderStatus.AWAITING_SHIPMENT,
            OrderStatus.SHIPPED,
            OrderStatus.COMPLETED,
        ):
            raise InvalidTransition(details={"status": order.status, "action": "cod_collect"})
        existing = order.payments.filter(channel=Channel.COD, status=Payment.Status.SUCCEEDED).first()
        if existing is not None:
            return existing
        payment = Payment.objects.create(
            order=order, channel=Channel.COD, out_trade_no=f"{order.order_no}COD", amount=amount
        )
        payment.succeed(trade_no="", at=at)
        payment.save()
        record_extra_money(order=order, payment=payment, actor=actor, note="cash on delivery collected")
        if amount != order.payable_total:
            case_open(
                type=CaseType.AMOUNT_MISMATCH,
                dedupe_key=f"cod:{order.order_no}",
                summary=_("货到付款金额不符：应收 %(e)s，实收 %(a)s") % {"e": order.payable_total, "a": amount},
                channel=Channel.COD,
                order=order,
                payment=payment,
                expected_amount=order.payable_total,
                actual_amount=amount,
            )
    return payment
