"""Message text: the variables a rule's template may use, and rendering them.

Templates use Django template syntax ({{ order_no }}, {% if is_cod %}…{% endif %}), without
HTML escaping: messages are plain text. The same variables (strings only) are passed to SMS
providers whose templates live at the provider (Aliyun TemplateParam).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.template import Context, Engine, TemplateSyntaxError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.models import Order, PaymentMethod

from . import conf

TEMPLATE_VARIABLES = {
    "shop": _("店铺名称"),
    "customer_name": _("顾客姓名"),
    "order_no": _("订单号"),
    "goods": _("商品摘要，如“商品A×2”或“商品A等3件商品”"),
    "amount": _("应付金额，如 180.00"),
    "payment_method": _("支付方式"),
    "deadline": _("付款截止时间，如 3月10日 22:30"),
    "time_left": _("距截止的剩余时间，如 23小时30分钟"),
    "pay_link": _("一键付款链接（OMS_PAY_LINK_TEMPLATE）"),
    "is_cod": _("是否货到付款（用于 {% if is_cod %}）"),
    "is_paid": _("是否已付款（用于 {% if is_paid %}）"),
    "paid_amount": _("已付金额，如 180.00"),
    "cancel_reason": _("取消原因，如“缺货”（商家取消通知）"),
    "carrier_name": _("快递公司，如“顺丰速运”（发货通知）"),
    "tracking_no": _("运单号（发货通知中为所发包裹的）"),
    "aftersale_no": _("售后单号（售后通知）"),
    "aftersale_type": _("售后类型，如“退货退款”（售后通知）"),
    "refund_amount": _("退款金额，如 60.00（售后通知）"),
    "reject_reason": _("拒绝原因（售后被拒绝通知）"),
    "return_address": _("退货地址（售后退货地址通知，OMS_RETURN_ADDRESS）"),
    "return_days": _("寄回期限天数（售后退货地址通知）"),
}

_engine = Engine(autoescape=False)


class RenderError(Exception):
    pass


def check_template(text: str) -> None:
    """Raise RenderError if `text` is not a valid template (used by the admin form)."""
    try:
        _engine.from_string(text)
    except TemplateSyntaxError as err:
        raise RenderError(str(err)) from err


def render(text: str, variables: dict[str, object]) -> str:
    try:
        return _engine.from_string(text).render(Context(variables)).strip()
    except TemplateSyntaxError as err:
        raise RenderError(str(err)) from err


def goods_summary(lines: Sequence[tuple[str, int]]) -> str:
    """(name, quantity) pairs → "商品A×2", or "商品A等3件商品" for several lines; at most 30 characters."""
    if not lines:
        return ""
    name, quantity = lines[0]
    name = name if len(name) <= 20 else name[:19] + "…"
    if len(lines) == 1:
        return f"{name}×{quantity}"
    return f"{name}等{sum(q for _, q in lines)}件商品"


def time_left_text(left: timedelta) -> str:
    minutes = max(int(left.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    return f"{max(minutes, 1)}分钟"


def local_text(at: datetime) -> str:
    local = timezone.localtime(at)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def message_variables(
    *, order: Order, goods: Sequence[tuple[str, int]], now: datetime, extra: dict[str, object] | None = None
) -> dict[str, object]:
    """The order's variables, then `extra` (what was captured when the message was queued, e.g.
    the shipped parcel's carrier and tracking number) on top."""
    return {
        "shop": order.storefront.name,
        "customer_name": order.customer_name,
        "order_no": order.order_no,
        "goods": goods_summary(goods),
        "amount": f"{order.payable_total:.2f}",
        "payment_method": str(order.get_payment_method_display()),
        "deadline": local_text(order.payment_deadline),
        "time_left": time_left_text(order.payment_deadline - now),
        "pay_link": conf.pay_link(order.order_no),
        "is_cod": order.payment_method == PaymentMethod.COD,
        "is_paid": order.paid_at is not None,
        "paid_amount": f"{order.paid_total:.2f}",
        "cancel_reason": str(order.get_cancel_reason_display()) if order.cancel_reason else "",
        "carrier_name": "",
        "aftersale_no": "",
        "aftersale_type": "",
        "refund_amount": "",
        "reject_reason": "",
        "return_address": "",
        "return_days": "",
        "tracking_no": order.tracking_no,
        **(extra or {}),
    }


def provider_params(variables: dict[str, object]) -> dict[str, str]:
    """The string variables, for SMS providers that render their own approved template."""
    return {key: value for key, value in variables.items() if isinstance(value, str)}
