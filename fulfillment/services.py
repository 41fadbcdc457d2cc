"""Fulfillment's verbs: allocate an order to warehouses, pick, pack, ship (whole or in part),
merge parcels, correct a tracking number, and the parcel's fate after it left (delivered,
refused, returned).

Each verb opens a transaction, locks the orders first and then the shipments (both in
primary-key order, so two verbs on a merged parcel queue instead of deadlocking), runs the
shipment's transition, writes the order's timeline through orders.events and queues side
effects after commit. Orders move through orders.services (the ship transition, delivery,
a refused cash-on-delivery order); stock moves through inventory.services.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import can_proceed

from inventory.models import Sku, StockMovement, Warehouse
from inventory.services import (
    stock_adjust,
    stock_consume,
    stock_holdings,
    stock_lock_and_plan,
    stock_lock_for_allocation,
    stock_reallocate,
    stock_release_units,
    stock_reserve,
)
from oms.errors import InvalidTransition, ValidationFailed
from oms.jobs import enqueue_on_commit
from orders.events import Actor, order_event_record
from orders.models import FulfillmentStatus, Order, OrderEvent, OrderStatus, PaymentMethod
from orders.services import order_cancel_refused, order_fulfillment_record, orders_lock
from payments.services import cod_collect
from reminders.models import Purpose
from reminders.services import reminders_notify_orders

from .models import (
    OPEN_STATUSES,
    SHIPPED_STATUSES,
    TRACKING_FORMATS,
    Carrier,
    LogisticsException,
    PickWave,
    Shipment,
    ShipmentKind,
    ShipmentLine,
    ShipmentStatus,
    TrackingEvent,
    TrackingSubscription,
)

SS = ShipmentStatus
ADDRESS_FIELDS = ("receiver", "receiver_phone", "province", "city", "district", "address_detail")


def _new_no(prefix: str, now: datetime) -> str:
    return f"{prefix}{timezone.localtime(now):%Y%m%d}{secrets.randbelow(10**8):08d}"


def _lock_shipments(ids: Iterable[int]) -> list[Shipment]:
    return list(Shipment.objects.select_for_update().filter(pk__in=list(ids)).order_by("pk"))


def _order_ids_of(shipment_ids: Iterable[int]) -> list[int]:
    return sorted(
        set(ShipmentLine.objects.filter(shipment_id__in=list(shipment_ids)).values_list("order_id", flat=True))
    )


def _require(shipment: Shipment, action: str) -> None:
    if not can_proceed(getattr(shipment, action)):
        raise InvalidTransition(
            _("包裹当前状态为「%(status)s」，不能执行此操作") % {"status": shipment.get_status_display()},
            details={"shipment_no": shipment.shipment_no, "status": shipment.status, "action": action},
        )


# --- allocation ------------------------------------------------------------------------


@dataclass
class _Candidate:
    warehouse: Warehouse
    capacity: dict[int, int]  # order_line_id -> units it could ship
    covers_province: bool

    def key(self) -> tuple:
        return (not self.covers_province, self.warehouse.priority, self.warehouse.pk)


def _choose_warehouses(*, need: dict[int, int], candidates: list[_Candidate]) -> tuple[dict[int, dict[int, int]], dict]:
    """The allocation rules: one warehouse that ships everything (fewest parcels), preferring
    the one that covers the receiver's province, then by priority; only if none can, split,
    each time taking the warehouse that covers the most remaining units.
    Returns ({order_line_id: {warehouse_id: units}}, trace).
    """
    whole = [c for c in candidates if all(c.capacity.get(line, 0) >= qty for line, qty in need.items())]
    trace = {
        "candidates": [
            {
                "warehouse": c.warehouse.code,
                "ships_all": c in whole,
                "covers_province": c.covers_province,
                "priority": c.warehouse.priority,
                "units": sum(min(c.capacity.get(line, 0), qty) for line, qty in need.items()),
            }
            for c in sorted(candidates, key=_Candidate.key)
        ]
    }
    if whole:
        chosen = min(whole, key=_Candidate.key)
        trace["rule"] = "single_warehouse_province" if chosen.covers_province else "single_warehouse_priority"
        trace["chosen"] = [chosen.warehouse.code]
        return {line: {chosen.warehouse.pk: qty} for line, qty in need.items()}, trace

    remaining = dict(need)
    capacity = {c.warehouse.pk: dict(c.capacity) for c in candidates}
    targets: dict[int, dict[int, int]] = defaultdict(dict)
    chosen_codes = []
    pool = list(candidates)
    while any(remaining.values()):

        def coverage(c: _Candidate) -> int:
            return sum(min(capacity[c.warehouse.pk].get(line, 0), qty) for line, qty in remaining.items())

        pool = [c for c in pool if coverage(c) > 0]
        if not pool:
            raise InvalidTransition(_("没有仓库能发出这些商品"), details={"remaining": remaining})
        best = min(pool, key=lambda c: (-coverage(c), *c.key()))
        for line, qty in remaining.items():
            take = min(capacity[best.warehouse.pk].get(line, 0), qty)
            if take:
                targets[line][best.warehouse.pk] = take
                remaining[line] -= take
        pool.remove(best)
        chosen_codes.append(best.warehouse.code)
    trace["rule"] = "split"
    trace["chosen"] = chosen_codes
    return dict(targets), trace


def _units_in_live_shipments(order_line_ids: Iterable[int]) -> dict[int, int]:
    return dict(
        ShipmentLine.objects.filter(order_line_id__in=list(order_line_ids))
        .exclude(shipment__status=SS.CANCELLED)
        .values_list("order_line_id")
        .annotate(units=Sum("quantity"))
        .order_by()
    )


def _same_address(a: Order, b: Order) -> bool:
    return a.customer_mobile == b.customer_mobile and all(getattr(a, f) == getattr(b, f) for f in ADDRESS_FIELDS)


def _merge_target(*, order: Order, warehouse_id: int) -> Shipment | None:
    """An untouched pending parcel of the same customer, address and warehouse (自动合单)."""
    if not settings.OMS_AUTO_MERGE or order.payment_method == PaymentMethod.COD:
        return None
    candidates = (
        Shipment.objects.select_for_update()
        .filter(
            warehouse_id=warehouse_id,
            status=SS.PENDING,
            wave__isnull=True,
            is_cod=False,
            customer_mobile=order.customer_mobile,
        )
        .order_by("pk")
    )
    for shipment in candidates:
        other_ids = _order_ids_of([shipment.pk])
        others = Order.objects.filter(pk__in=other_ids)
        if all(
            _same_address(order, other) and other.status == OrderStatus.AWAITING_SHIPMENT and other.held_at is None
            for other in others
        ):
            return shipment
    return None


def order_allocate(*, order: Order, actor: Actor | None = None, now: datetime | None = None) -> list[Shipment]:
    """Allocate a 待发货 order's unallocated units to warehouses and put them in pending parcels.

    Idempotent: an order whose units are all in parcels gets nothing new. Reservations move to
    the chosen warehouses under the stock rows' locks (primary-key order). The decision is
    kept on each shipment (`allocation`) and on the timeline.
    """
    actor = actor or Actor.system("allocate")
    now = now or timezone.now()
    with transaction.atomic():
        (order,) = orders_lock(order_ids=[order.pk])
        if order.status != OrderStatus.AWAITING_SHIPMENT or order.held_at is not None:  # 挂起: after release
            return []
        lines = list(order.lines.select_related("sku"))
        in_parcels = _units_in_live_shipments(line.pk for line in lines)
        need = {
            line.pk: line.quantity - line.cancelled_quantity - in_parcels.get(line.pk, 0)
            for line in lines
            if line.quantity - line.cancelled_quantity - in_parcels.get(line.pk, 0) > 0
        }
        if not need:
            return []
        sku_of = {line.pk: line.sku_id for line in lines}
        levels = stock_lock_for_allocation(sku_ids={sku_of[line] for line in need})
        holdings = stock_holdings(order_line_ids=list(need))
        warehouses = {w.pk: w for w in Warehouse.objects.filter(active=True)}
        candidates = []
        for warehouse in warehouses.values():
            capacity = {}
            for line_id in need:
                level = levels.get((sku_of[line_id], warehouse.pk))
                free = max(level.on_hand - level.reserved, 0) if level else 0
                capacity[line_id] = free + holdings.get(line_id, {}).get(warehouse.pk, 0)
            candidates.append(
                _Candidate(
                    warehouse=warehouse, capacity=capacity, covers_province=order.province in warehouse.provinces
                )
            )
        targets, trace = _choose_warehouses(need=need, candidates=candidates)
        moving = {line: per_wh for line, per_wh in targets.items() if holdings.get(line, {}) != per_wh}
        stock_reallocate(levels=levels, lines=sku_of, targets=moving)

        by_warehouse: dict[int, dict[int, int]] = defaultdict(dict)
        for line_id, per_wh in targets.items():
            for warehouse_id, units in per_wh.items():
                by_warehouse[warehouse_id][line_id] = units
        ship_by = (order.approved_at or now) + timedelta(hours=settings.OMS_SHIP_WITHIN_HOURS)
        shipments = []
        for warehouse_id, units in sorted(by_warehouse.items()):
            shipment = _merge_target(order=order, warehouse_id=warehouse_id)
            merged = shipment is not None
            if shipment is None:
                shipment = Shipment.objects.create(
                    shipment_no=_new_no("P", now),
                    warehouse_id=warehouse_id,
                    customer_mobile=order.customer_mobile,
                    is_cod=order.payment_method == PaymentMethod.COD,
                    allocation={**trace, "order_no": order.order_no},
                    ship_by=ship_by,
                )
            else:
                shipment.ship_by = min(shipment.ship_by or ship_by, ship_by)
                shipment.save(update_fields=["ship_by", "updated_at"])
            ShipmentLine.objects.bulk_create(
                [
                    ShipmentLine(shipment=shipment, order=order, order_line_id=line_id, quantity=qty)
                    for line_id, qty in units.items()
                ]
            )
            shipments.append(shipment)
            if merged:
                order_event_record(
                    order=order, type=OrderEvent.Type.SHIPMENTS_MERGED, actor=actor, shipment_no=shipment.shipment_no
                )
        order_event_record(
            order=order,
            type=OrderEvent.Type.ALLOCATED,
            actor=actor,
            rule=trace["rule"],
            warehouses=trace["chosen"],
            shipments=[s.shipment_no for s in shipments],
        )
    return shipments


def orders_awaiting_allocation(*, now: datetime | None = None):
    """待发货 orders with units in no parcel, past the release delay (OMS_RELEASE_DELAY_MINUTES)."""
    now = now or timezone.now()
    in_parcel = ShipmentLine.objects.filter(order_id=OuterRef("pk")).exclude(shipment__status=SS.CANCELLED)
    return (
        Order.objects.filter(
            status=OrderStatus.AWAITING_SHIPMENT,
            fulfillment_status=FulfillmentStatus.UNFULFILLED,
            approved_at__lte=now - timedelta(minutes=settings.OMS_RELEASE_DELAY_MINUTES),
            held_at__isnull=True,
        )
        .filter(~Exists(in_parcel))
        .order_by("approved_at", "pk")
    )


# --- warehouse work ------------------------------------------------------------------


def pick_wave_start(*, warehouse: Warehouse, shipments: Sequence[Shipment], actor: Actor) -> PickWave:
    """Start picking a batch of pending parcels of one warehouse; the wave is its pick list.
    A parcel holding a held order's lines (挂起) is refused until the order is released."""
    actor.require("fulfillment.pick_shipment")
    now = timezone.now()
    with transaction.atomic():
        _refuse_held(orders_lock(order_ids=_order_ids_of(s.pk for s in shipments)), _("挂起的订单不能拣货"))
        locked = _lock_shipments(s.pk for s in shipments)
        if not locked:
            raise ValidationFailed(fields={"shipments": [_("请选择待拣货的包裹")]})
        wrong = [s.shipment_no for s in locked if s.warehouse_id != warehouse.pk]
        if wrong:
            raise ValidationFailed(fields={"shipments": [_("包裹不属于该仓库：%(nos)s") % {"nos": ", ".join(wrong)}]})
        for shipment in locked:
            _require(shipment, "start_picking")
        wave = PickWave.objects.create(
            wave_no=_new_no("W", now), warehouse=warehouse, created_by=actor.user if actor.user else None
        )
        for shipment in locked:
            shipment.start_picking(wave=wave, at=now)
            shipment.save()
    return wave


def _refuse_held(orders: Sequence[Order], message: str) -> None:
    held = [order.order_no for order in orders if order.held_at is not None]
    if held:
        raise InvalidTransition(
            _("%(message)s：%(nos)s（请先释放）") % {"message": message, "nos": ", ".join(held)},
            details={"held_orders": held},
        )


def shipment_scan(*, shipment: Shipment, code: str, actor: Actor) -> ShipmentLine:
    """验货: one scanned barcode or SKU code counts one unit of a line of this parcel. A code not
    in the parcel, or one more unit than it holds, is refused with a message saying which.
    """
    actor.require("fulfillment.pick_shipment")
    code = (code or "").strip()
    if not code:
        raise ValidationFailed(fields={"code": [_("请扫描条码或输入 SKU 编码")]})
    with transaction.atomic():
        (shipment,) = _lock_shipments([shipment.pk])
        if shipment.status not in (SS.PENDING, SS.PICKING):
            _require(shipment, "pack")
        lines = list(shipment.lines.select_related("order_line__sku", "sku"))
        match = [line for line in lines if code in (line.item_code, line.item.barcode or None)]
        if not match:
            raise ValidationFailed(
                _("扫描的商品「%(code)s」不在此包裹中，请勿装入") % {"code": code},
                fields={"code": [_("不在此包裹中：%(code)s") % {"code": code}]},
            )
        line = next((m for m in match if m.packed_quantity < m.quantity), None)
        if line is None:
            raise ValidationFailed(
                _("「%(code)s」已扫够 %(n)d 件，多出的一件请勿装入") % {"code": code, "n": match[0].quantity},
                fields={"code": [_("数量已满：%(code)s") % {"code": code}]},
            )
        line.packed_quantity += 1
        line.save(update_fields=["packed_quantity"])
    return line


def shipment_pack(*, shipment: Shipment, actor: Actor) -> Shipment:
    """打包: allowed only when every unit of the parcel has been scanned."""
    actor.require("fulfillment.pick_shipment")
    with transaction.atomic():
        (shipment,) = _lock_shipments([shipment.pk])
        _require(shipment, "pack")
        missing = [
            {"sku": line.item_code, "quantity": line.quantity, "scanned": line.packed_quantity}
            for line in shipment.lines.select_related("order_line__sku", "sku")
            if line.packed_quantity < line.quantity
        ]
        if missing:
            raise ValidationFailed(
                _("还有商品未验货，不能打包"), fields={"lines": [_("未扫完")]}, details={"missing": missing}
            )
        shipment.pack(at=timezone.now())
        shipment.save()
    return shipment


# --- shipping ------------------------------------------------------------------------


def tracking_no_check(*, carrier: str, tracking_no: str) -> tuple[str, str]:
    """Normalise and check a carrier code and tracking number; raise ValidationFailed naming the field."""
    carrier = (carrier or "").strip()
    tracking_no = (tracking_no or "").strip().upper()
    if carrier not in Carrier.values or (carrier == Carrier.SANDBOX and not settings.OMS_CARRIER_SANDBOX_ENABLED):
        raise ValidationFailed(
            fields={
                "carrier": [
                    _("未知的承运商编码：%(c)s（可选：%(all)s）") % {"c": carrier, "all": ", ".join(_real_carriers())}
                ]
            }
        )
    if not TRACKING_FORMATS[carrier].match(tracking_no):
        raise ValidationFailed(
            fields={
                "tracking_no": [
                    _("运单号「%(no)s」不符合%(name)s的格式") % {"no": tracking_no, "name": Carrier(carrier).label}
                ]
            }
        )
    return carrier, tracking_no


def _real_carriers() -> list[str]:
    return [c for c in Carrier.values if c != Carrier.SANDBOX or settings.OMS_CARRIER_SANDBOX_ENABLED]


def _order_progress(order: Order) -> str:
    """unfulfilled / partially_shipped / shipped / delivered, from the order's lines and parcels."""
    lines = list(order.lines.all())
    rows = (
        ShipmentLine.objects.filter(
            order_id=order.pk, shipment__status__in=SHIPPED_STATUSES, shipment__kind=ShipmentKind.ORDER
        )
        .values_list("order_line_id", "shipment__status")
        .annotate(units=Sum("quantity"))
        .order_by()
    )
    shipped: dict[int, int] = defaultdict(int)
    statuses = set()
    for line_id, status, units in rows:
        shipped[line_id] += units
        statuses.add(status)
    if not statuses:
        return FulfillmentStatus.UNFULFILLED
    complete = all(shipped[line.pk] + line.cancelled_quantity >= line.quantity for line in lines)
    if not complete:
        return FulfillmentStatus.PARTIALLY_SHIPPED
    if statuses == {SS.DELIVERED}:
        return FulfillmentStatus.DELIVERED
    return FulfillmentStatus.SHIPPED


def _sibling_parcel(shipment: Shipment, now: datetime) -> Shipment:
    """A new pending parcel split off `shipment`: same warehouse, kind, customer, COD and
    deadline (the rest of a partly shipped parcel, or one order's share of a merged one)."""
    return Shipment.objects.create(
        shipment_no=_new_no("P", now),
        warehouse_id=shipment.warehouse_id,
        kind=shipment.kind,
        customer_mobile=shipment.customer_mobile,
        is_cod=shipment.is_cod,
        allocation=shipment.allocation,
        split_from=shipment,
        ship_by=shipment.ship_by,
    )


def _split_remainder(shipment: Shipment, ship_quantities: dict[int, int], now: datetime) -> Shipment | None:
    """Leave the units not shipped now in a new pending parcel of the same warehouse."""
    rest = []
    for line in shipment.lines.all():
        shipping = ship_quantities.get(line.pk, 0)
        if shipping < line.quantity:
            rest.append((line, line.quantity - shipping))
    if not rest:
        return None
    remainder = _sibling_parcel(shipment, now)
    ShipmentLine.objects.bulk_create(
        [
            ShipmentLine(shipment=remainder, order_id=line.order_id, order_line_id=line.order_line_id, quantity=qty)
            for line, qty in rest
        ]
    )
    for line, qty in rest:
        if qty == line.quantity:
            line.delete()
        else:
            line.quantity -= qty
            line.packed_quantity = min(line.packed_quantity, line.quantity)
            line.save(update_fields=["quantity", "packed_quantity"])
    return remainder


def _resolve_ship_lines(shipment: Shipment, lines: list[dict] | None) -> dict[int, int]:
    """{shipment_line_id: units} from [{"sku", "quantity"}] (None: the whole parcel)."""
    parcel = list(shipment.lines.select_related("order_line__sku", "sku"))
    if not lines:
        return {line.pk: line.quantity for line in parcel}
    by_sku: dict[str, list[ShipmentLine]] = defaultdict(list)
    for line in parcel:
        by_sku[line.item_code].append(line)
    wanted: dict[int, int] = {}
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(lines):
        sku, qty = item.get("sku"), item.get("quantity")
        if sku not in by_sku:
            errors[f"lines[{index}].sku"] = [_("此包裹中没有该 SKU：%(sku)s") % {"sku": sku}]
            continue
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
            errors[f"lines[{index}].quantity"] = [_("数量必须是正整数")]
            continue
        for line in by_sku[sku]:  # a merged parcel may hold one SKU for two orders
            take = min(qty, line.quantity - wanted.get(line.pk, 0))
            if take > 0:
                wanted[line.pk] = wanted.get(line.pk, 0) + take
                qty -= take
        if qty > 0:
            errors[f"lines[{index}].quantity"] = [_("超过包裹中该 SKU 的数量")]
    if errors:
        raise ValidationFailed(fields=errors)
    return wanted


def shipment_ship(
    *,
    shipment: Shipment,
    actor: Actor,
    carrier: str,
    tracking_no: str,
    lines: list[dict] | None = None,
    now: datetime | None = None,
) -> tuple[Shipment, bool]:
    """Hand a parcel (or some of its units) to the carrier. Returns (shipment, changed).

    Idempotent: shipping a shipped parcel again with the same carrier and tracking number
    changes nothing; another tracking number is `invalid_transition`. Units not shipped stay
    in a new pending parcel. Exactly the shipped units' reservations are consumed. Each order
    in the parcel moves to 已发货 once every one of its units has shipped or been cancelled.
    The tracking subscription and the customer's shipping notice go out after commit.
    """
    actor.require("orders.ship_order")
    carrier, tracking_no = tracking_no_check(carrier=carrier, tracking_no=tracking_no)
    now = now or timezone.now()
    with transaction.atomic():
        orders = orders_lock(order_ids=_order_ids_of([shipment.pk]))
        (shipment,) = _lock_shipments([shipment.pk])
        if shipment.status in SHIPPED_STATUSES:
            if (shipment.carrier, shipment.tracking_no) == (carrier, tracking_no):
                return shipment, False
            raise InvalidTransition(
                _("包裹已用另一运单号发货"),
                details={
                    "shipment_no": shipment.shipment_no,
                    "status": shipment.status,
                    "tracking_no": shipment.tracking_no,
                },
            )
        _require(shipment, "ship")
        # A hold (挂起) stops the parcel at the door too: one already picked before the order
        # was held is refused here, not handed to the carrier.
        _refuse_held(orders, _("挂起的订单不能发货"))
        replacement = shipment.kind == ShipmentKind.REPLACEMENT
        ready = (OrderStatus.SHIPPED, OrderStatus.COMPLETED) if replacement else (OrderStatus.AWAITING_SHIPMENT,)
        not_ready = [o.order_no for o in orders if o.status not in ready]
        if not_ready:
            raise InvalidTransition(
                _("订单不在待发货状态，不能发货：%(nos)s") % {"nos": ", ".join(not_ready)},
                details={"orders": not_ready, "action": "ship"},
            )
        clash = Shipment.objects.filter(carrier=carrier, tracking_no=tracking_no).exclude(status=SS.CANCELLED)
        if clash.exists():
            raise ValidationFailed(fields={"tracking_no": [_("该运单号已用于另一个包裹")]})
        quantities = _resolve_ship_lines(shipment, lines)
        _split_remainder(shipment, quantities, now)
        shipped_lines = list(shipment.lines.select_related("order_line__sku", "sku"))
        stock_consume(
            warehouse_id=shipment.warehouse_id,
            quantities={line.order_line_id: line.quantity for line in shipped_lines},
        )
        if shipment.is_cod:
            shipment.cod_amounts = _cod_amounts(shipment, orders)
        shipment.ship(carrier=carrier, tracking_no=tracking_no, at=now)
        shipment.save()
        TrackingSubscription.objects.create(shipment=shipment, carrier=carrier, tracking_no=tracking_no)
        units_by_order: dict[int, list[dict]] = defaultdict(list)
        for line in shipped_lines:
            units_by_order[line.order_id].append({"sku": line.item_code, "quantity": line.quantity})
        for order in orders:
            if order.pk not in units_by_order:
                continue
            order_event_record(
                order=order,
                type=OrderEvent.Type.SHIPMENT_SHIPPED,
                actor=actor,
                shipment_no=shipment.shipment_no,
                carrier=carrier,
                carrier_name=str(Carrier(carrier).label),
                tracking_no=tracking_no,
                lines=units_by_order[order.pk],
            )
            if not replacement:  # a replacement parcel does not move the order
                order_fulfillment_record(
                    order=order,
                    actor=actor,
                    fulfillment_status=_order_progress(order),
                    carrier=carrier,
                    tracking_no=tracking_no,
                )
        if not replacement:
            reminders_notify_orders(
                order_ids=list(units_by_order),
                purpose=Purpose.SHIPPED_NOTICE,
                variables={"carrier_name": str(Carrier(carrier).label), "tracking_no": tracking_no},
            )
        enqueue_on_commit("fulfillment.tasks.subscribe_tracking", shipment.pk)
    return shipment, True


def _cod_amounts(shipment: Shipment, orders: list[Order]) -> dict[str, str]:
    """What the carrier collects at the door: each COD order's payable total, on the first of its
    parcels to leave (a COD order is collected once, whole)."""
    amounts = {}
    for order in orders:
        if order.payment_method != PaymentMethod.COD:
            continue
        already = Shipment.objects.filter(
            lines__order_id=order.pk, status__in=SHIPPED_STATUSES, cod_amounts__has_key=order.order_no
        ).exists()
        if not already:
            amounts[order.order_no] = str(order.payable_total)
    return amounts


def shipment_correct_tracking(*, shipment: Shipment, actor: Actor, carrier: str, tracking_no: str) -> Shipment:
    """A wrong tracking number can be corrected until the carrier's first scan arrives; old and
    new go on each order's timeline, and the new number is subscribed."""
    actor.require("fulfillment.correct_tracking")
    carrier, tracking_no = tracking_no_check(carrier=carrier, tracking_no=tracking_no)
    with transaction.atomic():
        orders = orders_lock(order_ids=_order_ids_of([shipment.pk]))
        (shipment,) = _lock_shipments([shipment.pk])
        if shipment.status != SS.SHIPPED or TrackingEvent.objects.filter(shipment=shipment).exists():
            raise InvalidTransition(
                _("包裹已有物流轨迹或不在已发货状态，不能更正运单号"),
                details={"shipment_no": shipment.shipment_no, "status": shipment.status, "action": "correct_tracking"},
            )
        if (shipment.carrier, shipment.tracking_no) == (carrier, tracking_no):
            return shipment
        if Shipment.objects.filter(carrier=carrier, tracking_no=tracking_no).exclude(pk=shipment.pk).exists():
            raise ValidationFailed(fields={"tracking_no": [_("该运单号已用于另一个包裹")]})
        old = {"carrier": shipment.carrier, "tracking_no": shipment.tracking_no}
        Shipment.objects.filter(pk=shipment.pk).update(
            carrier=carrier, tracking_no=tracking_no, updated_at=timezone.now()
        )
        shipment.carrier, shipment.tracking_no = carrier, tracking_no
        TrackingSubscription.objects.create(shipment=shipment, carrier=carrier, tracking_no=tracking_no)
        for order in orders:
            order_event_record(
                order=order,
                type=OrderEvent.Type.TRACKING_CORRECTED,
                actor=actor,
                shipment_no=shipment.shipment_no,
                old=old,
                new={"carrier": carrier, "tracking_no": tracking_no},
            )
            if order.tracking_no == old["tracking_no"]:
                order_fulfillment_record(
                    order=order,
                    actor=actor,
                    fulfillment_status=order.fulfillment_status,
                    carrier=carrier,
                    tracking_no=tracking_no,
                )
        enqueue_on_commit("fulfillment.tasks.subscribe_tracking", shipment.pk)
    return shipment


def shipments_merge(*, shipments: Sequence[Shipment], actor: Actor) -> Shipment:
    """合单: put pending parcels of one customer, one address and one warehouse into the first."""
    actor.require("fulfillment.merge_shipment")
    if len(shipments) < 2:
        raise ValidationFailed(fields={"shipments": [_("请至少选择两个包裹")]})
    now = timezone.now()
    with transaction.atomic():
        orders = orders_lock(order_ids=_order_ids_of(s.pk for s in shipments))
        _refuse_held(orders, _("挂起的订单不能合单"))
        locked = _lock_shipments(s.pk for s in shipments)
        problems = []
        if any(s.status != SS.PENDING for s in locked):
            problems.append(_("只能合并待拣货的包裹"))
        if len({s.warehouse_id for s in locked}) > 1:
            problems.append(_("包裹来自不同仓库"))
        if len({s.is_cod for s in locked}) > 1:
            problems.append(_("货到付款与在线支付的包裹不能合并"))
        if any(not _same_address(orders[0], o) for o in orders[1:]):
            problems.append(_("顾客或收货地址不同"))
        if problems:
            raise ValidationFailed(fields={"shipments": problems})
        target, rest = locked[0], locked[1:]
        ShipmentLine.objects.filter(shipment__in=rest).update(shipment=target)
        for shipment in rest:
            shipment.cancel(at=now, merged_into=target)
            shipment.save()
        if target.ship_by:
            target.ship_by = min(s.ship_by or target.ship_by for s in locked)
            target.save(update_fields=["ship_by", "updated_at"])
        for order in orders:
            order_event_record(
                order=order,
                type=OrderEvent.Type.SHIPMENTS_MERGED,
                actor=actor,
                shipment_no=target.shipment_no,
                merged=[s.shipment_no for s in rest],
            )
    return target


def shipments_readdress(*, order: Order) -> int:
    """After an address change before shipment: a parcel shared with other orders (合单) no longer
    fits, so this order's units move to a parcel of their own. Returns parcels split. The
    caller holds the order's lock.
    """
    now = timezone.now()
    open_ids = (
        ShipmentLine.objects.filter(order_id=order.pk, shipment__status__in=OPEN_STATUSES)
        .values_list("shipment_id", flat=True)
        .distinct()
    )
    split = 0
    for shipment in _lock_shipments(open_ids):
        if set(_order_ids_of([shipment.pk])) != {order.pk}:
            _detach_order(shipment, order, now)
            split += 1
    return split


def _detach_order(shipment: Shipment, order: Order, now: datetime) -> Shipment:
    """Move one order's lines out of a shared parcel into a new one of their own."""
    own = _sibling_parcel(shipment, now)
    ShipmentLine.objects.filter(shipment=shipment, order_id=order.pk).update(shipment=own, packed_quantity=0)
    return own


def shipments_cancel_for_order(*, order: Order, actor: Actor) -> list[str]:
    """The order was cancelled before anything shipped: its parcels not yet handed over are
    cancelled (its lines leave a shared parcel first). The caller holds the order's lock and
    releases the stock. Returns the cancelled shipment numbers.
    """
    now = timezone.now()
    open_ids = (
        ShipmentLine.objects.filter(order_id=order.pk, shipment__status__in=OPEN_STATUSES)
        .values_list("shipment_id", flat=True)
        .distinct()
    )
    cancelled = []
    for shipment in _lock_shipments(open_ids):
        if set(_order_ids_of([shipment.pk])) != {order.pk}:
            shipment = _detach_order(shipment, order, now)
        shipment.cancel(at=now)
        shipment.save()
        cancelled.append(shipment.shipment_no)
    return cancelled


# --- after the parcel left -------------------------------------------------------------


def _orders_of(shipment: Shipment) -> list[Order]:
    return orders_lock(order_ids=_order_ids_of([shipment.pk]))


def shipment_deliver(*, shipment: Shipment, actor: Actor, at: datetime) -> Shipment:
    """签收: the parcel's and, once all its parcels are delivered, each order's delivered_at. A
    cash-on-delivery parcel records the money the carrier collected (cod_collect). The caller
    holds the shipment's lock, inside its transaction.
    """
    with transaction.atomic():
        if shipment.status == SS.DELIVERED:
            return shipment
        _require(shipment, "deliver")
        orders = _orders_of(shipment)
        shipment.deliver(at=at)
        shipment.save()
        if shipment.kind != ShipmentKind.ORDER:
            return shipment  # a return reached the warehouse, or a replacement the customer
        for order in orders:
            amount = shipment.cod_amounts.get(order.order_no)
            if amount and order.status in (OrderStatus.AWAITING_SHIPMENT, OrderStatus.SHIPPED):
                cod_collect(order=order, amount=Decimal(amount), actor=actor, at=at)
                order.refresh_from_db()
            order_fulfillment_record(
                order=order, actor=actor, fulfillment_status=_order_progress(order), delivered_at=at
            )
        reminders_notify_orders(
            order_ids=[o.pk for o in orders if o.fulfillment_status == FulfillmentStatus.DELIVERED],
            purpose=Purpose.DELIVERED_NOTICE,
        )
        return shipment


def shipment_return(*, shipment: Shipment, actor: Actor, at: datetime) -> Shipment:
    """退回: the parcel came back to its warehouse. Its units go back on hand (an audited stock
    movement); a cash-on-delivery order with nothing collected is cancelled as refused. The
    caller holds the shipment's lock.
    """
    with transaction.atomic():
        if shipment.status == SS.RETURNED:
            return shipment
        _require(shipment, "return_to_sender")
        orders = _orders_of(shipment)
        shipment.return_to_sender(at=at)
        shipment.save()
        for line in shipment.lines.select_related("order_line__sku", "sku"):
            stock_adjust(
                sku=line.item,
                warehouse=shipment.warehouse,
                delta=line.quantity,
                reason=StockMovement.Reason.RETURNED,
                actor_label=actor.label,
                note=_("包裹 %(no)s 退回") % {"no": shipment.shipment_no},
            )
        for order in orders:
            order_event_record(
                order=order, type=OrderEvent.Type.RETURNED, actor=actor, shipment_no=shipment.shipment_no
            )
            if (
                order.status == OrderStatus.SHIPPED
                and order.payment_method == PaymentMethod.COD
                and not order.paid_total
            ):
                order_cancel_refused(order=order, actor=actor, now=at)
        return shipment


def order_units_shipped(order: Order) -> dict[int, int]:
    """{order_line_id: units in parcels that left} (after-sales asks this)."""
    return dict(
        ShipmentLine.objects.filter(order_id=order.pk, shipment__status__in=SHIPPED_STATUSES)
        .values_list("order_line_id")
        .annotate(units=Sum("quantity"))
        .order_by()
    )


# --- after-sales parcels ----------------------------------------------------------------


def replacement_parcels_create(
    *, order: Order, quantities: dict[int, int], actor: Actor, skus: dict[int, Sku] | None = None
) -> list[Shipment]:
    """补发 / 换货: reserve stock for replacement units of the order's lines and put them in
    pending parcels (kind `replacement`), which are picked, shipped and tracked like any other
    but do not move the order. `skus` ({order_line_id: Sku}) names another spec to send instead
    of a line's own (an exchange); its units are reserved and shipped against that line. The
    caller holds the order's lock.
    """
    now = timezone.now()
    skus = skus or {}
    lines = {line.pk: line for line in order.lines.select_related("sku").filter(pk__in=list(quantities))}
    item = {line_id: skus.get(line_id) or lines[line_id].sku for line_id in quantities}
    if len({sku.pk for sku in item.values()}) < len(item):
        raise ValidationFailed(fields={"lines": [_("两个订单行不能换成同一个商品")]})
    plan = stock_lock_and_plan(demand={item[line_id]: qty for line_id, qty in quantities.items()})
    reservations = stock_reserve(plan=plan, line_ids_by_sku={item[line_id].pk: line_id for line_id in quantities})
    per_warehouse: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    level_warehouse = {level.pk: level.warehouse_id for level in plan.levels.values()}
    for reservation in reservations:
        per_warehouse[level_warehouse[reservation.stock_level_id]][reservation.order_line_id] += reservation.quantity
    shipments = []
    for warehouse_id, units in sorted(per_warehouse.items()):
        shipment = Shipment.objects.create(
            shipment_no=_new_no("P", now),
            warehouse_id=warehouse_id,
            kind=ShipmentKind.REPLACEMENT,
            customer_mobile=order.customer_mobile,
            allocation={"rule": "replacement", "order_no": order.order_no},
            ship_by=now + timedelta(hours=settings.OMS_SHIP_WITHIN_HOURS),
        )
        ShipmentLine.objects.bulk_create(
            [
                ShipmentLine(shipment=shipment, order=order, order_line_id=line_id, quantity=qty, sku=skus.get(line_id))
                for line_id, qty in units.items()
            ]
        )
        shipments.append(shipment)
    return shipments


def return_parcel_register(*, order: Order, carrier: str, tracking_no: str, actor: Actor) -> Shipment:
    """The customer's return parcel (kind `return`), to the warehouse the order shipped from. It
    is tracked like any parcel: its 签收 (delivered_at) is the return reaching the warehouse.
    """
    carrier, tracking_no = tracking_no_check(carrier=carrier, tracking_no=tracking_no)
    if Shipment.objects.filter(carrier=carrier, tracking_no=tracking_no).exclude(status=SS.CANCELLED).exists():
        raise ValidationFailed(fields={"tracking_no": [_("该运单号已登记过")]})
    origin = (
        Shipment.objects.filter(lines__order_id=order.pk, status__in=SHIPPED_STATUSES).order_by("shipped_at").first()
    )
    warehouse_id = (
        origin.warehouse_id if origin else Warehouse.objects.filter(active=True).order_by("priority", "pk").first().pk
    )
    now = timezone.now()
    shipment = Shipment.objects.create(
        shipment_no=_new_no("R", now),
        warehouse_id=warehouse_id,
        kind=ShipmentKind.RETURN,
        customer_mobile=order.customer_mobile,
        allocation={"rule": "return", "order_no": order.order_no},
    )
    shipment.ship(carrier=carrier, tracking_no=tracking_no, at=now)
    shipment.save()
    TrackingSubscription.objects.create(shipment=shipment, carrier=carrier, tracking_no=tracking_no)
    enqueue_on_commit("fulfillment.tasks.subscribe_tracking", shipment.pk)
    return shipment


def order_units_unship(*, order: Order, quantities: dict[int, int]) -> None:
    """Units refunded before they shipped: out of the order's open parcels (a parcel left empty is
    cancelled) and their reservations released. The caller holds the order's lock and records
    the cancelled units on the order.
    """
    now = timezone.now()
    remaining = dict(quantities)
    lines = list(
        ShipmentLine.objects.select_for_update()
        .filter(order_id=order.pk, order_line_id__in=list(quantities), shipment__status__in=OPEN_STATUSES)
        .order_by("-pk")
    )
    touched = {line.shipment_id for line in lines}
    for line in lines:
        take = min(line.quantity, remaining.get(line.order_line_id, 0))
        if not take:
            continue
        remaining[line.order_line_id] -= take
        if take == line.quantity:
            line.delete()
        else:
            line.quantity -= take
            line.packed_quantity = min(line.packed_quantity, line.quantity)
            line.save(update_fields=["quantity", "packed_quantity"])
    for shipment in _lock_shipments(touched):
        if not shipment.lines.exists():
            shipment.cancel(at=now)
            shipment.save()
    stock_release_units(quantities=quantities)


# --- logistics exceptions ------------------------------------------------------------------


def logistics_exception_open(
    *, shipment: Shipment, kind: str, last_event: str = "", actor: Actor
) -> LogisticsException:
    """Open (once: one open exception per parcel and kind) a case for customer service, and put
    it on each order's timeline. Safe to call again while it is open: returns the open one.
    """
    with transaction.atomic():
        existing = LogisticsException.objects.filter(shipment=shipment, kind=kind, resolved_at__isnull=True).first()
        if existing is not None:
            return existing
        case = LogisticsException.objects.create(shipment=shipment, kind=kind, last_event=last_event[:500])
        for order in Order.objects.filter(pk__in=_order_ids_of([shipment.pk])):
            order_event_record(
                order=order,
                type=OrderEvent.Type.LOGISTICS_EXCEPTION,
                actor=actor,
                shipment_no=shipment.shipment_no,
                kind=kind,
                kind_display=str(LogisticsException.Kind(kind).label),
                last_event=last_event[:200],
            )
    return case


def logistics_exception_claim(*, case: LogisticsException, actor: Actor) -> LogisticsException:
    """认领: a customer-service agent takes an open case, so two agents do not call one customer.
    Taking a case someone else owns is allowed (a colleague is away); the queue shows the owner."""
    actor.require("fulfillment.resolve_exception")
    with transaction.atomic():
        case = LogisticsException.objects.select_for_update().get(pk=case.pk)
        if case.resolved_at is not None:
            raise InvalidTransition(_("该异常已处理"), details={"action": "claim", "outcome": case.outcome})
        if actor.user is None:
            raise ValidationFailed(fields={"owner": [_("只有员工可以认领")]})
        if case.owner_id != actor.user.pk:
            case.owner = actor.user
            case.save(update_fields=["owner"])
    return case


def logistics_exception_resolve(
    *, case: LogisticsException, actor: Actor, outcome: str, note: str = ""
) -> LogisticsException:
    """Customer service closes a case with an outcome (reship, intercept, contact, claim, closed)."""
    actor.require("fulfillment.resolve_exception")
    if outcome not in LogisticsException.Outcome.values:
        raise ValidationFailed(fields={"outcome": [_("请选择处理结果")]})
    with transaction.atomic():
        case = LogisticsException.objects.select_for_update().get(pk=case.pk)
        if case.resolved_at is not None:
            raise InvalidTransition(_("该异常已处理"), details={"action": "resolve", "outcome": case.outcome})
        case.resolved_at = timezone.now()
        case.resolved_by = actor.user
        case.outcome = outcome
        case.note = note[:500]
        case.owner = case.owner or actor.user
        case.save()
    return case
