"""After-sales verbs: open a request (eligibility checked here), approve or reject it, take the
return parcel, receive and inspect, refund exactly the accepted units, reship, cancel, and the
clock that runs the deadlines.

Each verb locks the order, then the request, in one transaction; money goes back through
payments.services.refund_request (the original route, approval by finance, execution queued),
stock through inventory.services, parcels through fulfillment.services, and every step is on
the order's timeline.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import can_proceed

from fulfillment.models import SHIPPED_STATUSES, Shipment
from fulfillment.services import (
    order_units_shipped,
    order_units_unship,
    replacement_parcels_create,
    return_parcel_register,
)
from inventory.models import Sku, StockMovement
from inventory.services import stock_adjust, stock_hold_defective
from oms.errors import DomainError, InvalidTransition, ValidationFailed
from orders.events import Actor, order_event_record
from orders.models import ActorKind, Order, OrderEvent, OrderLine, OrderStatus, OrderType
from orders.services import order_aftersale_mark, order_lines_cancel_units, orders_lock
from payments.models import Refund
from payments.services import refund_request
from reminders.models import Purpose
from reminders.services import reminders_notify_orders

from .models import (
    OPEN_STATUSES,
    QUALITY_REASONS,
    RELEASED_STATUSES,
    RESPONSIBILITY,
    Aftersale,
    AftersaleLine,
    AftersaleReason,
    AftersaleStatus,
    AftersaleType,
    Disposition,
    Responsibility,
)

A = AftersaleStatus
T = AftersaleType
ZERO = Decimal("0.00")
CENT = Decimal("0.01")


class AftersaleRefused(DomainError):
    status_code = 409


class WindowClosed(AftersaleRefused):
    code = "aftersale_window_closed"
    default_message = _("已超过售后申请期限")


class QuantityExceeds(AftersaleRefused):
    code = "quantity_exceeds_refundable"
    default_message = _("申请数量超过可售后数量")


class InProgress(AftersaleRefused):
    code = "aftersale_in_progress"
    default_message = _("该商品已有进行中的售后申请")


class NotAllowed(AftersaleRefused):
    code = "aftersale_not_allowed"
    default_message = _("该订单或商品不支持此售后")


# --- money, exact to the cent ----------------------------------------------------------


def _units_total(line: OrderLine, n: int) -> Decimal:
    """What the first `n` units of a line cost after its discount share: the net amount split
    over its units, the remainder cents on the last units, so all units add up to exactly the
    line's net amount however they are split over time."""
    net_cents = int(((line.line_total - line.discount) * 100).to_integral_value())
    base, remainder = divmod(net_cents, line.quantity)
    extra = max(0, n - (line.quantity - remainder))
    return (Decimal(n * base + extra) / 100).quantize(CENT)


def line_refund_amount(line: OrderLine, *, unit_from: int, units: int) -> Decimal:
    """The refund for units [unit_from, unit_from + units) of a line."""
    return _units_total(line, unit_from + units) - _units_total(line, unit_from)


def _units_refunded(order_line_ids: list[int]) -> dict[int, int]:
    """Units of each line whose money has gone (or is going) back."""
    rows = (
        AftersaleLine.objects.filter(order_line_id__in=order_line_ids, aftersale__status__in=[A.REFUNDING, A.COMPLETED])
        .exclude(refund_amount=ZERO)
        .values_list("order_line_id")
        .annotate(units=Sum("quantity_accepted"))
        .order_by()
    )
    return {line_id: units or 0 for line_id, units in rows}


# --- opening a request -----------------------------------------------------------------


def _new_no(now: datetime) -> str:
    return f"AS{timezone.localtime(now):%Y%m%d}{secrets.randbelow(10**8):08d}"


@dataclass
class _Claim:
    line: OrderLine
    quantity: int
    exchange_to: Sku | None = None


def _resolve_lines(order: Order, lines: list[dict[str, Any]]) -> list[_Claim]:
    by_sku = {line.sku_code: line for line in order.lines.select_related("sku")}
    errors: dict[str, list[str]] = {}
    claims: list[_Claim] = []
    seen = set()
    if not lines:
        raise ValidationFailed(fields={"lines": [_("请至少选择一件商品")]})
    for index, item in enumerate(lines):
        sku, qty = item.get("sku"), item.get("quantity")
        if sku not in by_sku:
            errors[f"lines[{index}].sku"] = [_("订单中没有该商品：%(sku)s") % {"sku": sku}]
        elif sku in seen:
            errors[f"lines[{index}].sku"] = [_("同一商品请合并为一行")]
        elif not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
            errors[f"lines[{index}].quantity"] = [_("数量必须是正整数")]
        else:
            claims.append(
                _Claim(line=by_sku[sku], quantity=qty, exchange_to=_exchange_target(item, by_sku[sku], index, errors))
            )
        seen.add(sku)
    if errors:
        raise ValidationFailed(fields=errors)
    return claims


def _exchange_target(item: dict[str, Any], line: OrderLine, index: int, errors: dict[str, list[str]]) -> Sku | None:
    """换货换另一规格: `exchange_to` names an active SKU at the same price as the line's."""
    code = (item.get("exchange_to") or "").strip()
    if not code or code == line.sku_code:
        return None
    field = f"lines[{index}].exchange_to"
    target = Sku.objects.filter(code=code, active=True).first()
    if target is None:
        errors[field] = [_("没有这个在售商品：%(sku)s") % {"sku": code}]
    elif target.price != line.unit_price:
        errors[field] = [
            _("只能换同价的商品：%(sku)s 售价 %(p)s，原商品 %(o)s")
            % {"sku": code, "p": target.price, "o": line.unit_price}
        ]
    return target


def _check_eligibility(*, order: Order, type: str, reason: str, claims: list[_Claim], now: datetime) -> None:
    if order.status in (OrderStatus.CANCELLED, OrderStatus.PENDING_PAYMENT):
        raise NotAllowed(_("订单未付款或已取消，不能申请售后"), details={"status": order.status})
    line_ids = [claim.line.pk for claim in claims]
    open_lines = set(
        AftersaleLine.objects.filter(order_line_id__in=line_ids, aftersale__status__in=OPEN_STATUSES).values_list(
            "order_line__sku_code", flat=True
        )
    )
    if open_lines:
        raise InProgress(details={"skus": sorted(open_lines)})
    claimed = dict(
        AftersaleLine.objects.filter(order_line_id__in=line_ids)
        .exclude(aftersale__status__in=RELEASED_STATUSES)
        .values_list("order_line_id")
        .annotate(units=Sum("quantity"))
        .order_by()
    )
    # Units cancelled before shipment were cancelled by a request, so they are among the claimed.
    over = {
        claim.line.sku_code: {
            "requested": claim.quantity,
            "refundable": claim.line.quantity - claimed.get(claim.line.pk, 0),
        }
        for claim in claims
        if claim.quantity > claim.line.quantity - claimed.get(claim.line.pk, 0)
    }
    if over and type != T.COMPENSATION:
        raise QuantityExceeds(details=over)

    shipped = order_units_shipped(order)
    goods_left = any(shipped.get(claim.line.pk, 0) for claim in claims)
    if type in (T.RETURN_REFUND, T.EXCHANGE, T.RESEND) and not goods_left:
        raise NotAllowed(_("商品尚未发货，请申请仅退款"), details={"type": type})
    if type != T.EXCHANGE and any(claim.exchange_to for claim in claims):
        raise ValidationFailed(fields={"lines": [_("只有换货可以换成另一规格")]})
    if type == T.RESEND and RESPONSIBILITY[reason] == Responsibility.BUYER:
        raise NotAllowed(_("补寄只适用于少件、破损等商家或快递责任"), details={"reason": reason})
    if not goods_left:
        return  # refund before shipment: no window, the units are simply cancelled
    delivered = order.delivered_at
    if reason == AftersaleReason.NO_REASON_7DAYS:
        exempt = [c.line.sku_code for c in claims if not c.line.sku.no_reason_return]
        if order.order_type == OrderType.CUSTOM or exempt:
            raise NotAllowed(
                _("定制订单及生鲜、数字、定制类商品不支持七天无理由退货"),
                details={"reason": reason, "exempt_skus": exempt, "order_type": order.order_type},
            )
    if delivered is None:
        return
    days = settings.OMS_AFTERSALE_PERIOD_DAYS if reason in QUALITY_REASONS else 7
    if now > delivered + timedelta(days=days):
        raise WindowClosed(details={"reason": reason, "delivered_at": delivered.isoformat(), "days": days})


def aftersale_create(
    *,
    order: Order,
    actor: Actor,
    type: str,
    reason: str,
    lines: list[dict[str, Any]],
    description: str = "",
    images: list[str] | None = None,
    compensation_amount: Decimal | None = None,
    now: datetime | None = None,
) -> Aftersale:
    """Open a request for some units of an order. Each refusal is a 409 with a stable code:
    aftersale_not_allowed, aftersale_in_progress, quantity_exceeds_refundable,
    aftersale_window_closed. The merchant must answer by the deadline
    (OMS_AFTERSALE_RESPOND_HOURS); an open request holds the receipt auto-confirmation.
    """
    now = now or timezone.now()
    if type not in T.values:
        raise ValidationFailed(fields={"type": [_("无效的售后类型")]})
    if reason not in AftersaleReason.values:
        raise ValidationFailed(fields={"reason": [_("无效的售后原因")]})
    if type == T.COMPENSATION:
        if actor.kind != ActorKind.STAFF:
            raise NotAllowed(_("补差只能由客服发起"), details={"type": type})
        if compensation_amount is None or compensation_amount <= ZERO:
            raise ValidationFailed(fields={"compensation_amount": [_("请填写补差金额")]})
    if actor.kind == ActorKind.STAFF:
        actor.require("aftersales.open_aftersale")
    with transaction.atomic():
        (order,) = orders_lock(order_ids=[order.pk])
        claims = _resolve_lines(order, lines)
        _check_eligibility(order=order, type=type, reason=reason, claims=claims, now=now)
        done = _units_refunded([c.line.pk for c in claims])
        preview = sum(
            (line_refund_amount(c.line, unit_from=done.get(c.line.pk, 0), units=c.quantity) for c in claims), ZERO
        )
        aftersale = Aftersale.objects.create(
            aftersale_no=_new_no(now),
            order=order,
            type=type,
            reason=reason,
            responsibility=RESPONSIBILITY[reason],
            description=description[:500],
            images=list(images or [])[:9],
            opened_by=actor.label,
            refund_amount=compensation_amount if type == T.COMPENSATION else preview,
            compensation_amount=compensation_amount or ZERO,
            deadline=now + timedelta(hours=settings.OMS_AFTERSALE_RESPOND_HOURS),
        )
        AftersaleLine.objects.bulk_create(
            [
                AftersaleLine(aftersale=aftersale, order_line=c.line, quantity=c.quantity, exchange_sku=c.exchange_to)
                for c in claims
            ]
        )
        order_aftersale_mark(order=order, open=True)
        order_event_record(
            order=order,
            type=OrderEvent.Type.AFTERSALE_OPENED,
            actor=actor,
            aftersale_no=aftersale.aftersale_no,
            aftersale_type=type,
            reason_code=reason,
            lines=[{"sku": c.line.sku_code, "quantity": c.quantity} for c in claims],
            refund_amount=str(aftersale.refund_amount),
        )
    return aftersale


# --- staff verbs -------------------------------------------------------------------------


def _lock(aftersale: Aftersale) -> tuple[Order, Aftersale]:
    (order,) = orders_lock(order_ids=[aftersale.order_id])
    return order, Aftersale.objects.select_for_update().get(pk=aftersale.pk)


def _require(aftersale: Aftersale, action: str) -> None:
    if not can_proceed(getattr(aftersale, action)):
        raise InvalidTransition(
            _("售后单当前状态为「%(s)s」，不能执行此操作") % {"s": aftersale.get_status_display()},
            details={"aftersale_no": aftersale.aftersale_no, "status": aftersale.status, "action": action},
        )


def _close_out(order: Order) -> None:
    still_open = Aftersale.objects.filter(order=order, status__in=OPEN_STATUSES).exists()
    order_aftersale_mark(order=order, open=still_open)


def aftersale_approve(
    *, aftersale: Aftersale, actor: Actor, refund_shipping: bool = False, now: datetime | None = None
) -> Aftersale:
    """同意. Money above OMS_AFTERSALE_APPROVAL_LIMIT needs a supervisor (主管). Refund-only and
    compensation go straight to the refund; returns and exchanges wait for the parcel; a
    resend reserves stock and creates the replacement parcel.
    """
    actor.require("aftersales.approve_aftersale")
    limit = settings.OMS_AFTERSALE_APPROVAL_LIMIT
    now = now or timezone.now()
    with transaction.atomic():
        order, aftersale = _lock(aftersale)
        _require(aftersale, "approve")
        if limit is not None and aftersale.refund_amount > limit:
            actor.require("aftersales.approve_large_aftersale")
        if refund_shipping and aftersale.responsibility == Responsibility.BUYER:
            raise ValidationFailed(fields={"refund_shipping": [_("买家责任的售后不退运费")]})
        aftersale.refund_shipping = refund_shipping
        aftersale.approve(by=actor.user, at=now)
        aftersale.escalated = False
        aftersale.save()
        order_event_record(
            order=order, type=OrderEvent.Type.AFTERSALE_APPROVED, actor=actor, aftersale_no=aftersale.aftersale_no
        )
        lines = list(aftersale.lines.select_related("order_line"))
        if aftersale.type == T.REFUND_ONLY:
            _refund_only_units(order, lines, actor)
            _start_refund(order, aftersale, lines, actor, now, units={ln.pk: ln.quantity for ln in lines})
        elif aftersale.type == T.COMPENSATION:
            _start_refund(order, aftersale, lines, actor, now, units={})
        elif aftersale.type == T.RESEND:
            _reship(order, aftersale, {ln.order_line_id: ln.quantity for ln in lines}, actor)
        else:
            aftersale.await_return(deadline=now + timedelta(days=settings.OMS_AFTERSALE_RETURN_SHIP_DAYS))
            aftersale.save()
        if aftersale.status == A.AWAITING_RETURN:
            _tell_customer(
                aftersale,
                Purpose.AFTERSALE_RETURN,
                return_address=settings.OMS_RETURN_ADDRESS,
                return_days=str(settings.OMS_AFTERSALE_RETURN_SHIP_DAYS),
            )
        else:
            amount = aftersale.refund_amount if aftersale.status in (A.REFUNDING, A.COMPLETED) else ZERO
            _tell_customer(aftersale, Purpose.AFTERSALE_APPROVED, refund_amount=f"{amount:.2f}" if amount else "")
    return aftersale


def _refund_only_units(order: Order, lines: list[AftersaleLine], actor: Actor) -> None:
    """仅退款 before shipment: the units not yet shipped are cancelled (out of their parcels,
    stock released); after shipment nothing moves (e.g. a missing item)."""
    shipped = order_units_shipped(order)
    unshipped = {}
    for line in lines:
        ol = line.order_line
        not_shipped = ol.quantity - ol.cancelled_quantity - shipped.get(ol.pk, 0)
        take = min(line.quantity, max(not_shipped, 0))
        if take:
            unshipped[ol.pk] = take
    if not unshipped:
        return
    order_units_unship(order=order, quantities=unshipped)
    order_lines_cancel_units(order=order, quantities=unshipped)
    order_event_record(
        order=order,
        type=OrderEvent.Type.UNITS_CANCELLED,
        actor=actor,
        lines=[
            {"sku": ln.order_line.sku_code, "quantity": unshipped[ln.order_line_id]}
            for ln in lines
            if ln.order_line_id in unshipped
        ],
    )


def _start_refund(
    order: Order,
    aftersale: Aftersale,
    lines: list[AftersaleLine],
    actor: Actor,
    now: datetime,
    *,
    units: dict[int, int],
    freight: Decimal = ZERO,
) -> None:
    """Refund `units` ({aftersale_line_id: units}) at their exact share of each line's net
    amount, plus the shipping fee where it is due, the capped return freight and any
    compensation: one payments Refund, numbered after the request, for finance to approve.
    """
    done = _units_refunded([ln.order_line_id for ln in lines])
    total = ZERO
    for line in lines:
        count = units.get(line.pk, 0)
        start = done.get(line.order_line_id, 0)
        amount = line_refund_amount(line.order_line, unit_from=start, units=count) if count else ZERO
        line.quantity_accepted = count if line.quantity_accepted is None else line.quantity_accepted
        if line.quantity_received is None and line.quantity_accepted is not None:
            line.quantity_received = line.quantity_accepted
        line.unit_from, line.refund_amount = start, amount
        line.save(update_fields=["quantity_accepted", "quantity_received", "unit_from", "refund_amount"])
        done[line.order_line_id] = start + count
        total += amount
    if aftersale.refund_shipping or _last_unit_of_unshipped_order(order):
        total += order.shipping_fee
        aftersale.refund_shipping = True
    total += freight + aftersale.compensation_amount
    aftersale.freight_compensation = freight
    already = order.refunds.aggregate(total=Sum("amount"))["total"] or ZERO
    total = min(total, order.paid_total - already)  # never more than what was paid
    out_refund_no = f"{aftersale.aftersale_no}R"
    if total > ZERO:
        refund_request(
            order=order,
            amount=total,
            reason=_("售后 %(no)s") % {"no": aftersale.aftersale_no},
            actor=actor,
            out_refund_no=out_refund_no,
        )
    aftersale.start_refund(
        out_refund_no=out_refund_no if total > ZERO else "",
        amount=total,
        deadline=now + timedelta(days=7),  # Art. 25: the refund follows within 7 days
    )
    aftersale.save()
    if total == ZERO:  # nothing was paid (cash on delivery not collected) or nothing accepted
        aftersale.complete(refunded=ZERO, at=now)
        aftersale.save()
        _closed_event(order, aftersale, actor)


def _last_unit_of_unshipped_order(order: Order) -> bool:
    """Every unit of the order cancelled before anything shipped: the shipping fee goes back too."""
    if order_units_shipped(order):
        return False
    return all(line.cancelled_quantity >= line.quantity for line in order.lines.all())


def _reship(order: Order, aftersale: Aftersale, quantities: dict[int, int], actor: Actor) -> None:
    quantities = {line_id: qty for line_id, qty in quantities.items() if qty > 0}
    skus = {
        ln.order_line_id: ln.exchange_sku for ln in aftersale.lines.select_related("exchange_sku") if ln.exchange_sku
    }
    if not quantities:
        aftersale.complete(refunded=ZERO, at=timezone.now())
        aftersale.save()
        _closed_event(order, aftersale, actor)
        return
    shipments = replacement_parcels_create(order=order, quantities=quantities, actor=actor, skus=skus)
    aftersale.reship(shipment=shipments[0])
    aftersale.save()
    order_event_record(
        order=order,
        type=OrderEvent.Type.AFTERSALE_RESHIPPED,
        actor=actor,
        aftersale_no=aftersale.aftersale_no,
        shipments=[s.shipment_no for s in shipments],
    )


def _tell_customer(aftersale: Aftersale, purpose: str, **variables: str) -> None:
    """Queue the customer's message in this transaction (the reminders outbox), once per request."""
    reminders_notify_orders(
        order_ids=[aftersale.order_id],
        purpose=purpose,
        subject=aftersale.aftersale_no,
        variables={
            "aftersale_no": aftersale.aftersale_no,
            "aftersale_type": str(aftersale.get_type_display()),
            **variables,
        },
    )


def _closed_event(order: Order, aftersale: Aftersale, actor: Actor) -> None:
    order_event_record(
        order=order,
        type=OrderEvent.Type.AFTERSALE_CLOSED,
        actor=actor,
        aftersale_no=aftersale.aftersale_no,
        status=aftersale.status,
        refunded=str(aftersale.refunded_amount),
    )
    _close_out(order)


def aftersale_reject(*, aftersale: Aftersale, actor: Actor, reason: str) -> Aftersale:
    """拒绝, with a reason the customer sees."""
    actor.require("aftersales.approve_aftersale")
    if not (reason or "").strip():
        raise ValidationFailed(fields={"reason": [_("请填写拒绝原因")]})
    with transaction.atomic():
        order, aftersale = _lock(aftersale)
        _require(aftersale, "reject")
        aftersale.reject(by=actor.user, reason=reason.strip()[:200], at=timezone.now())
        aftersale.save()
        order_event_record(
            order=order,
            type=OrderEvent.Type.AFTERSALE_REJECTED,
            actor=actor,
            reason=reason.strip()[:200],
            aftersale_no=aftersale.aftersale_no,
        )
        _tell_customer(aftersale, Purpose.AFTERSALE_REJECTED, reject_reason=reason.strip()[:200])
        _close_out(order)
    return aftersale


def aftersale_return_shipment(*, aftersale: Aftersale, actor: Actor, carrier: str, tracking_no: str) -> Aftersale:
    """The customer sent the return: its parcel is registered and tracked like any other."""
    with transaction.atomic():
        order, aftersale = _lock(aftersale)
        _require(aftersale, "ship_return")
        shipment = return_parcel_register(order=order, carrier=carrier, tracking_no=tracking_no, actor=actor)
        aftersale.ship_return(shipment=shipment, at=timezone.now())
        aftersale.save()
        order_event_record(
            order=order,
            type=OrderEvent.Type.AFTERSALE_RETURN_SHIPPED,
            actor=actor,
            aftersale_no=aftersale.aftersale_no,
            carrier=shipment.carrier,
            tracking_no=shipment.tracking_no,
        )
    return aftersale


def aftersale_receive(
    *,
    aftersale: Aftersale,
    actor: Actor,
    inspections: list[dict[str, Any]],
    return_freight: Decimal | None = None,
) -> Aftersale:
    """收货验收: per line, units received and accepted and what happens to them (`restock` back
    on hand through the audited stock service, `defective` held apart, `scrap` written off).
    The refund covers the units accepted; an exchange reships them.
    """
    actor.require("aftersales.inspect_aftersale")
    now = timezone.now()
    with transaction.atomic():
        order, aftersale = _lock(aftersale)
        _require(aftersale, "receive")
        lines = {ln.order_line.sku_code: ln for ln in aftersale.lines.select_related("order_line__sku")}
        errors: dict[str, list[str]] = {}
        given = {}
        for index, item in enumerate(inspections or []):
            line = lines.get(item.get("sku"))
            received, accepted = item.get("quantity_received"), item.get("quantity_accepted")
            disposition = item.get("disposition")
            if line is None:
                errors[f"inspections[{index}].sku"] = [_("不在此售后单中")]
            elif not isinstance(received, int) or not 0 <= received <= line.quantity:
                errors[f"inspections[{index}].quantity_received"] = [_("收到数量须在 0 到申请数量之间")]
            elif not isinstance(accepted, int) or not 0 <= accepted <= received:
                errors[f"inspections[{index}].quantity_accepted"] = [_("验收通过数量不能超过收到数量")]
            elif received and disposition not in Disposition.values:
                errors[f"inspections[{index}].disposition"] = [_("请选择处置：入库可售、次品隔离或报废")]
            else:
                given[line.pk] = (line, received, accepted, disposition or "", item)
        missing = [sku for sku, ln in lines.items() if ln.pk not in given]
        if missing and not errors:
            errors["inspections"] = [_("每件申请的商品都要验收：%(s)s") % {"s": ", ".join(missing)}]
        if errors:
            raise ValidationFailed(fields=errors)
        warehouse = aftersale.return_shipment.warehouse if aftersale.return_shipment else None
        if warehouse is None:
            origin = Shipment.objects.filter(lines__order_id=order.pk, status__in=SHIPPED_STATUSES).first()
            warehouse = origin.warehouse
        for line, received, accepted, disposition, item in given.values():
            line.quantity_received, line.quantity_accepted, line.disposition = received, accepted, disposition
            line.grade = str(item.get("grade", ""))[:32]
            line.photos = list(item.get("photos") or [])[:9]
            line.save(update_fields=["quantity_received", "quantity_accepted", "disposition", "grade", "photos"])
            sku = line.order_line.sku
            if received and disposition == Disposition.RESTOCK:
                stock_adjust(
                    sku=sku,
                    warehouse=warehouse,
                    delta=received,
                    reason=StockMovement.Reason.RETURNED,
                    actor_label=actor.label,
                    note=_("售后 %(no)s 退货入库") % {"no": aftersale.aftersale_no},
                )
            elif received and disposition == Disposition.DEFECTIVE:
                stock_hold_defective(sku=sku, warehouse=warehouse, quantity=received)
        aftersale.receive(at=now)
        aftersale.inspect(at=now)
        aftersale.save()
        order_event_record(
            order=order,
            type=OrderEvent.Type.AFTERSALE_INSPECTED,
            actor=actor,
            aftersale_no=aftersale.aftersale_no,
            lines=[
                {"sku": ln.order_line.sku_code, "received": r, "accepted": a, "disposition": d}
                for ln, r, a, d, _item in given.values()
            ],
        )
        freight = ZERO
        if return_freight and aftersale.responsibility == Responsibility.SELLER:
            freight = min(Decimal(return_freight), settings.OMS_RETURN_FREIGHT_CAP).quantize(CENT)
        line_list = [g[0] for g in given.values()]
        if aftersale.type == T.EXCHANGE:
            _reship(order, aftersale, {ln.order_line_id: ln.quantity_accepted for ln in line_list}, actor)
        else:
            _start_refund(
                order,
                aftersale,
                line_list,
                actor,
                now,
                units={ln.pk: ln.quantity_accepted for ln in line_list},
                freight=freight,
            )
    return aftersale


def aftersale_cancel(*, aftersale: Aftersale, actor: Actor) -> Aftersale:
    """The customer withdraws the request, any time before the refund starts."""
    with transaction.atomic():
        order, aftersale = _lock(aftersale)
        _require(aftersale, "cancel")
        aftersale.cancel(at=timezone.now())
        aftersale.save()
        _closed_event(order, aftersale, actor)
    return aftersale


# --- the clock ------------------------------------------------------------------------------


@dataclass
class ClockReport:
    completed: int = 0
    auto_approved: int = 0
    escalated: int = 0
    warned: int = 0
    closed: int = 0


def _auto_approvable(aftersale: Aftersale) -> bool:
    """The platforms' rule: a merchant who does not answer agrees to refund unshipped units and to
    no-reason returns within the window."""
    if aftersale.type == T.REFUND_ONLY:
        shipped = order_units_shipped(aftersale.order)
        return not any(shipped.get(ln.order_line_id) for ln in aftersale.lines.all())
    return aftersale.type == T.RETURN_REFUND and aftersale.reason == AftersaleReason.NO_REASON_7DAYS


def aftersales_run_clock(*, now: datetime | None = None, limit: int = 200) -> ClockReport:
    """One pass of the deadlines: refunds done → completed; replacements shipped → completed;
    unanswered requests auto-approved or escalated (with a warning 4 h before); returns not sent
    in time closed; returns delivered but not received in time, and refunds late, escalated.
    Each request is handled in its own transaction, skipping rows others hold.
    """
    now = now or timezone.now()
    report = ClockReport()
    system = Actor.system("aftersales_clock")

    succeeded = Refund.objects.filter(status=Refund.Status.SUCCEEDED).values("out_refund_no")
    for aftersale in Aftersale.objects.filter(status=A.REFUNDING, out_refund_no__in=succeeded)[:limit]:
        with transaction.atomic():
            order, aftersale = _lock(aftersale)
            if aftersale.status != A.REFUNDING:
                continue
            aftersale.complete(refunded=aftersale.refund_amount, at=now)
            aftersale.save()
            _closed_event(order, aftersale, system)
            _tell_customer(aftersale, Purpose.AFTERSALE_REFUNDED, refund_amount=f"{aftersale.refunded_amount:.2f}")
            report.completed += 1
    for aftersale in Aftersale.objects.filter(status=A.RESHIPPING, replacement_shipment__status__in=SHIPPED_STATUSES)[
        :limit
    ]:
        with transaction.atomic():
            order, aftersale = _lock(aftersale)
            aftersale.complete(refunded=ZERO, at=now)
            aftersale.save()
            _closed_event(order, aftersale, system)
            report.completed += 1

    warn_before = now + timedelta(hours=4)
    report.warned = Aftersale.objects.filter(
        status=A.REQUESTED, warned=False, deadline__lte=warn_before, deadline__gt=now
    ).update(warned=True)
    for aftersale in Aftersale.objects.filter(status=A.REQUESTED, deadline__lte=now, escalated=False)[:limit]:
        if settings.OMS_AFTERSALE_TIMEOUT_POLICY == "auto_approve" and _auto_approvable(aftersale):
            aftersale_approve(aftersale=aftersale, actor=system, now=now)
            report.auto_approved += 1
        else:
            Aftersale.objects.filter(pk=aftersale.pk, status=A.REQUESTED).update(escalated=True, updated_at=now)
            report.escalated += 1
    for aftersale in Aftersale.objects.filter(status=A.AWAITING_RETURN, deadline__lte=now)[:limit]:
        with transaction.atomic():
            order, aftersale = _lock(aftersale)
            if aftersale.status != A.AWAITING_RETURN:
                continue
            aftersale.close(at=now)
            aftersale.save()
            _closed_event(order, aftersale, system)
            report.closed += 1
    late_receipt = now - timedelta(days=settings.OMS_AFTERSALE_RECEIVE_DAYS)
    report.escalated += Aftersale.objects.filter(
        status=A.RETURN_SHIPPED, escalated=False, return_shipment__delivered_at__lte=late_receipt
    ).update(escalated=True, updated_at=now)
    report.escalated += Aftersale.objects.filter(status=A.REFUNDING, escalated=False, deadline__lte=now).update(
        escalated=True, updated_at=now
    )
    return report


def aftersale_deadline(aftersale: Aftersale) -> datetime | None:
    """When the next person must act: the stored deadline, or for a return that reached the
    warehouse, its delivery plus OMS_AFTERSALE_RECEIVE_DAYS."""
    if aftersale.status == A.RETURN_SHIPPED and aftersale.return_shipment_id:
        delivered = aftersale.return_shipment.delivered_at
        return delivered + timedelta(days=settings.OMS_AFTERSALE_RECEIVE_DAYS) if delivered else None
    return aftersale.deadline
