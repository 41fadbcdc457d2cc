"""Server-side pricing: goods total, coupon discount, shipping fee, and the cent-exact
split of the discount across lines. Pure functions; no database access.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from django.utils.translation import gettext as _

from oms.errors import CouponNotApplicable

from .models import ZERO, Coupon

CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class PricedLine:
    unit_price: Decimal
    quantity: int

    @property
    def line_total(self) -> Decimal:
        return money(self.unit_price * self.quantity)


@dataclass(frozen=True)
class Quote:
    goods_total: Decimal
    discount_total: Decimal
    shipping_fee: Decimal
    payable_total: Decimal
    line_discounts: list[Decimal]

    def breakdown(self) -> dict[str, str]:
        return {
            "goods_total": str(self.goods_total),
            "discount_total": str(self.discount_total),
            "shipping_fee": str(self.shipping_fee),
            "payable_total": str(self.payable_total),
        }


def coupon_discount(*, coupon: Coupon, goods_total: Decimal, now: datetime) -> Decimal:
    """The discount a coupon gives on `goods_total`, or CouponNotApplicable with the reason.

    满X减Y (threshold) applies once; only 每满X减Y (every_threshold) repeats per X.
    """
    if not coupon.active:
        raise CouponNotApplicable(_("优惠券已停用"), details={"reason": "inactive"})
    if coupon.valid_from and now < coupon.valid_from:
        raise CouponNotApplicable(_("优惠券尚未生效"), details={"reason": "not_started"})
    if coupon.valid_until and now >= coupon.valid_until:
        raise CouponNotApplicable(_("优惠券已过期"), details={"reason": "expired"})
    if coupon.usage_limit is not None and coupon.used_count >= coupon.usage_limit:
        raise CouponNotApplicable(_("优惠券已被领完"), details={"reason": "used_up"})
    if goods_total < coupon.threshold:
        raise CouponNotApplicable(
            _("未达到使用门槛：满 %(threshold)s 元可用") % {"threshold": coupon.threshold},
            details={"reason": "below_threshold", "threshold": str(coupon.threshold)},
        )

    if coupon.kind == Coupon.Kind.THRESHOLD:
        discount = coupon.reduction
    elif coupon.kind == Coupon.Kind.EVERY_THRESHOLD:
        if coupon.threshold <= ZERO:
            raise CouponNotApplicable(_("优惠券配置错误"), details={"reason": "misconfigured"})
        times = (goods_total / coupon.threshold).to_integral_value(rounding=ROUND_DOWN)
        discount = coupon.reduction * times
    else:
        discount = money(goods_total * coupon.percent_off / Decimal(100))
        if coupon.max_discount is not None:
            discount = min(discount, coupon.max_discount)
    if coupon.max_discount is not None and coupon.kind != Coupon.Kind.PERCENT:
        discount = min(discount, coupon.max_discount)
    return money(min(discount, goods_total))


def allocate(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split `total` across `weights` in proportion, to the cent, summing exactly to `total`.

    Largest-remainder: every share is first rounded down to the cent, then the cents
    left over go to the largest remainders (earlier lines win ties).
    """
    base = sum(weights, ZERO)
    if total == ZERO or base == ZERO:
        return [ZERO for _ in weights]
    cents_total = int(total / CENT)
    raw = [Decimal(cents_total) * w / base for w in weights]
    floors = [int(r.to_integral_value(rounding=ROUND_DOWN)) for r in raw]
    leftover = cents_total - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(raw[i] - floors[i]), i))
    for i in order[:leftover]:
        floors[i] += 1
    return [Decimal(c) * CENT for c in floors]


def quote(
    *,
    lines: list[PricedLine],
    coupon: Coupon | None,
    now: datetime,
    shipping_fee: Decimal,
    free_shipping_threshold: Decimal,
) -> Quote:
    """Price an order. Shipping is free when the goods cost, after discount, reaches the threshold."""
    line_totals = [line.line_total for line in lines]
    goods_total = sum(line_totals, ZERO)
    discount = coupon_discount(coupon=coupon, goods_total=goods_total, now=now) if coupon else ZERO
    after_discount = goods_total - discount
    fee = ZERO if after_discount >= free_shipping_threshold else money(shipping_fee)
    return Quote(
        goods_total=goods_total,
        discount_total=discount,
        shipping_fee=fee,
        payable_total=after_discount + fee,
        line_discounts=allocate(discount, line_totals),
    )
