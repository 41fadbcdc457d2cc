"""The order timeline for people: each event as one sentence, sorted into kinds a reader can
filter by (money, fulfillment, messages, staff), with the raw data kept one click away.

Events are written by many apps (orders.events is the one writer); this module only reads
them. An event type without a sentence here still reads sensibly: its label and reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import ActorKind, OrderEvent, OrderStatus

T = OrderEvent.Type


class Kind:
    MONEY = "money"
    FULFILLMENT = "fulfillment"
    MESSAGES = "messages"
    STAFF = "staff"
    ORDER = "order"

    choices = [
        (MONEY, gettext_lazy("资金")),
        (FULFILLMENT, gettext_lazy("发货物流")),
        (MESSAGES, gettext_lazy("消息")),
        (STAFF, gettext_lazy("员工操作")),
        (ORDER, gettext_lazy("订单")),
    ]


KIND_OF_TYPE = {
    T.PAY: Kind.MONEY,
    T.REVIVE: Kind.MONEY,
    T.PAYMENT_STARTED: Kind.MONEY,
    T.PAYMENT_RECEIVED: Kind.MONEY,
    T.REFUND_REQUESTED: Kind.MONEY,
    T.REFUND_APPROVED: Kind.MONEY,
    T.REFUND_SUCCEEDED: Kind.MONEY,
    T.REFUND_FAILED: Kind.MONEY,
    T.CASE_OPENED: Kind.MONEY,
    T.SHIP: Kind.FULFILLMENT,
    T.ALLOCATED: Kind.FULFILLMENT,
    T.SHIPMENT_SHIPPED: Kind.FULFILLMENT,
    T.SHIPMENTS_MERGED: Kind.FULFILLMENT,
    T.TRACKING_CORRECTED: Kind.FULFILLMENT,
    T.DELIVERED: Kind.FULFILLMENT,
    T.LOGISTICS_EXCEPTION: Kind.FULFILLMENT,
    T.RETURNED: Kind.FULFILLMENT,
    T.CANCEL_REFUSED: Kind.FULFILLMENT,
    T.REMINDER_SENT: Kind.MESSAGES,
    T.MANUAL_REMINDER: Kind.MESSAGES,
}


def _yuan(value: Any) -> str:
    return f"¥{value}" if value not in (None, "") else "—"


def actor_display(event: OrderEvent) -> str:
    if event.actor_kind == ActorKind.STAFF:
        return _("员工 %(name)s") % {"name": event.actor_label}
    if event.actor_kind == ActorKind.STOREFRONT:
        return _("店铺 %(name)s") % {"name": event.actor_label}
    if event.actor_kind == ActorKind.GATEWAY:
        return _("支付渠道 %(name)s") % {"name": event.actor_label}
    return _("系统")


def _status(value: str) -> str:
    return str(OrderStatus(value).label) if value in OrderStatus.values else value


def _lines(items: list[dict] | None) -> str:
    return _("，").join(f"{item.get('sku')} × {item.get('quantity')}" for item in items or [])


def _address(values: dict | None) -> str:
    return _("、").join(f"{value}" for value in (values or {}).values() if value)


SENTENCES: dict[str, Callable[[OrderEvent, dict], str]] = {
    T.CREATED: lambda e, d: (
        _("%(actor)s 下单：商品 %(goods)s，优惠 %(discount)s，运费 %(ship)s，应付 %(payable)s")
        % {
            "actor": actor_display(e),
            "goods": _yuan(d.get("goods_total")),
            "discount": _yuan(d.get("discount_total")),
            "ship": _yuan(d.get("shipping_fee")),
            "payable": _yuan(d.get("payable_total")),
        }
    ),
    T.PAY: lambda e, d: (
        _("收到付款 %(amount)s（%(actor)s）") % {"amount": _yuan(d.get("amount")), "actor": actor_display(e)}
    ),
    T.APPROVE: lambda e, d: _("%(actor)s 审核通过，订单待发货") % {"actor": actor_display(e)},
    T.CONFIRM_COD: lambda e, d: _("%(actor)s 核实货到付款订单") % {"actor": actor_display(e)},
    T.SHIP: lambda e, d: _("全部商品已发出，订单已发货"),
    T.COMPLETE: lambda e, d: (
        _("确认收货（%(actor)s）%(reason)s")
        % {"actor": actor_display(e), "reason": _("：%(text)s") % {"text": e.reason} if e.reason else ""}
    ),
    T.CANCEL: lambda e, d: _("%(actor)s 取消订单：%(reason)s") % {"actor": actor_display(e), "reason": e.reason or "—"},
    T.REVIVE: lambda e, d: _("关单后收到付款 %(amount)s，订单恢复") % {"amount": _yuan(d.get("amount"))},
    T.ADDRESS_CHANGED: lambda e, d: (
        _("%(actor)s 修改收货信息：%(old)s → %(new)s")
        % {"actor": actor_display(e), "old": _address(d.get("old")), "new": _address(d.get("new"))}
    ),
    T.REVIEW_CLEARED: lambda e, d: (
        _("%(actor)s 人工复核通过%(note)s")
        % {"actor": actor_display(e), "note": _("：%(text)s") % {"text": d["note"]} if d.get("note") else ""}
    ),
    T.REFUND_REQUESTED: lambda e, d: (
        _("发起退款 %(amount)s（%(no)s）：%(reason)s")
        % {"amount": _yuan(d.get("amount")), "no": d.get("out_refund_no", ""), "reason": e.reason}
    ),
    T.REFUND_APPROVED: lambda e, d: (
        _("%(actor)s 审批退款 %(no)s") % {"actor": actor_display(e), "no": d.get("out_refund_no", "")}
    ),
    T.REFUND_SUCCEEDED: lambda e, d: (
        _("退款成功 %(amount)s（%(no)s）") % {"amount": _yuan(d.get("amount")), "no": d.get("out_refund_no", "")}
    ),
    T.REFUND_FAILED: lambda e, d: (
        _("退款失败（%(no)s）：%(reason)s") % {"no": d.get("out_refund_no", ""), "reason": e.reason}
    ),
    T.PAYMENT_STARTED: lambda e, d: (
        _("发起支付 %(amount)s（%(channel)s，%(no)s）")
        % {"amount": _yuan(d.get("amount")), "channel": d.get("channel", ""), "no": d.get("out_trade_no", "")}
    ),
    T.PAYMENT_RECEIVED: lambda e, d: (
        _("收到款项 %(amount)s（%(no)s），订单状态未变：%(reason)s")
        % {"amount": _yuan(d.get("amount")), "no": d.get("out_trade_no", ""), "reason": e.reason}
    ),
    T.CASE_OPENED: lambda e, d: (
        _("转财务复核（%(reason)s）：%(summary)s") % {"reason": e.reason, "summary": d.get("summary", "")}
    ),
    T.MANUAL_REMINDER: lambda e, d: (
        _("%(actor)s 人工催付（%(channel)s）：%(reason)s")
        % {"actor": actor_display(e), "channel": d.get("channel", ""), "reason": e.reason}
    ),
    T.REMINDER_SENT: lambda e, d: _("发送提醒：%(rule)s") % {"rule": e.reason},
    T.ALLOCATED: lambda e, d: _("分仓：%(warehouses)s") % {"warehouses": _("、").join(d.get("warehouses") or [])},
    T.SHIPMENT_SHIPPED: lambda e, d: (
        _("包裹 %(no)s 发出：%(carrier)s %(tracking)s，%(lines)s")
        % {
            "no": d.get("shipment_no", ""),
            "carrier": d.get("carrier_name") or d.get("carrier", ""),
            "tracking": d.get("tracking_no", ""),
            "lines": _lines(d.get("lines")),
        }
    ),
    T.SHIPMENTS_MERGED: lambda e, d: _("合单：并入包裹 %(no)s") % {"no": d.get("shipment_no", "")},
    T.TRACKING_CORRECTED: lambda e, d: (
        _("包裹 %(no)s 更正运单号：%(old)s → %(new)s")
        % {
            "no": d.get("shipment_no", ""),
            "old": " ".join((d.get("old") or {}).values()),
            "new": " ".join((d.get("new") or {}).values()),
        }
    ),
    T.DELIVERED: lambda e, d: _("顾客已签收"),
    T.LOGISTICS_EXCEPTION: lambda e, d: (
        _("包裹 %(no)s 物流异常（%(kind)s）：%(last)s")
        % {
            "no": d.get("shipment_no", ""),
            "kind": d.get("kind_display", d.get("kind", "")),
            "last": d.get("last_event", ""),
        }
    ),
    T.RETURNED: lambda e, d: _("包裹 %(no)s 退回仓库，商品已入库") % {"no": d.get("shipment_no", "")},
    T.CANCEL_REFUSED: lambda e, d: _("顾客拒收，货到付款订单取消"),
    T.AFTERSALE_OPENED: lambda e, d: (
        _("%(actor)s 申请售后 %(no)s：%(lines)s，应退 %(amount)s")
        % {
            "actor": actor_display(e),
            "no": d.get("aftersale_no", ""),
            "lines": _lines(d.get("lines")),
            "amount": _yuan(d.get("refund_amount")),
        }
    ),
    T.AFTERSALE_APPROVED: lambda e, d: (
        _("%(actor)s 同意售后 %(no)s") % {"actor": actor_display(e), "no": d.get("aftersale_no", "")}
    ),
    T.AFTERSALE_REJECTED: lambda e, d: (
        _("%(actor)s 拒绝售后 %(no)s：%(reason)s")
        % {"actor": actor_display(e), "no": d.get("aftersale_no", ""), "reason": e.reason}
    ),
    T.AFTERSALE_RETURN_SHIPPED: lambda e, d: (
        _("顾客寄回售后 %(no)s 的商品：%(carrier)s %(tracking)s")
        % {"no": d.get("aftersale_no", ""), "carrier": d.get("carrier", ""), "tracking": d.get("tracking_no", "")}
    ),
    T.AFTERSALE_INSPECTED: lambda e, d: (
        _("售后 %(no)s 退货验收：%(lines)s")
        % {
            "no": d.get("aftersale_no", ""),
            "lines": _("，").join(
                _("%(sku)s 收 %(received)s 合格 %(accepted)s")
                % {"sku": item.get("sku"), "received": item.get("received"), "accepted": item.get("accepted")}
                for item in d.get("lines") or []
            ),
        }
    ),
    T.AFTERSALE_RESHIPPED: lambda e, d: (
        _("售后 %(no)s 补发包裹 %(parcels)s")
        % {"no": d.get("aftersale_no", ""), "parcels": _("、").join(d.get("shipments") or [])}
    ),
    T.AFTERSALE_CLOSED: lambda e, d: (
        _("售后 %(no)s 结束，退款 %(amount)s") % {"no": d.get("aftersale_no", ""), "amount": _yuan(d.get("refunded"))}
    ),
    T.UNITS_CANCELLED: lambda e, d: _("未发货商品取消：%(lines)s") % {"lines": _lines(d.get("lines"))},
}


def event_kind(event: OrderEvent) -> str:
    kind = KIND_OF_TYPE.get(event.type)
    if kind:
        return kind
    return Kind.STAFF if event.actor_kind == ActorKind.STAFF else Kind.ORDER


def event_sentence(event: OrderEvent) -> str:
    """One sentence for a person, in the request's language; unknown types fall back to their label and reason."""
    data = event.data if isinstance(event.data, dict) else {}
    render = SENTENCES.get(event.type)
    if render is not None:
        try:
            return render(event, data)
        except (KeyError, TypeError, ValueError):  # an old event without a field we expect
            pass
    label = event.get_type_display()
    text = _("%(label)s：%(reason)s") % {"label": label, "reason": event.reason} if event.reason else str(label)
    if event.from_status and event.to_status:
        text += _("（%(from)s → %(to)s）") % {"from": _status(event.from_status), "to": _status(event.to_status)}
    return text
