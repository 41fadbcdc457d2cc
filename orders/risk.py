"""Customer risk (信用): customers who let orders time out unpaid again and again lose cash on
delivery until staff clear the flag, with a reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from oms.bulk import update_per_pk, upsert_rows
from oms.errors import ValidationFailed, require_permission

from .models import CancelReason, CustomerRiskFlag, Order


def customer_risk_refresh(*, mobiles: set[str], now: datetime | None = None) -> int:
    """Flag customers with OMS_RISK_TIMEOUT_CLOSES timeout closes within OMS_RISK_WINDOW_DAYS.

    Set-based (a handful of queries whatever the number of customers): one count, one read
    of the existing flags, one upsert of the new ones, one UPDATE of the counts of those
    already up. A flag that staff cleared only comes back for closes after it was cleared.
    Returns the number of customers newly flagged.
    """
    now = now or timezone.now()
    window_start = now - timedelta(days=settings.OMS_RISK_WINDOW_DAYS)
    threshold = settings.OMS_RISK_TIMEOUT_CLOSES
    # Refused cash-on-delivery parcels count like orders left unpaid: both cost the shop.
    timeout_closes = Order.objects.filter(
        customer_mobile__in=mobiles,
        cancel_reason__in=[CancelReason.TIMEOUT, CancelReason.REFUSED],
        cancelled_at__gte=window_start,
    ).order_by()
    candidates = dict(timeout_closes.values_list("customer_mobile").annotate(n=Count("pk")).filter(n__gte=threshold))
    if not candidates:
        return 0
    existing = CustomerRiskFlag.objects.filter(mobile__in=list(candidates)).values_list(
        "pk", "mobile", "active", "cleared_at", "timeout_closes"
    )
    active: dict[str, int] = {}
    counted: dict[int, int] = {}  # active flag pk -> the count it holds
    cleared = []
    for pk, mobile, is_active, cleared_at, closes in existing:
        if is_active:
            active[mobile] = pk
            counted[pk] = closes
        elif cleared_at is not None:
            cleared.append(mobile)

    reasons: dict[int, str] = {}  # counts are small numbers: each text is made once

    def reason(count: int) -> str:
        if count not in reasons:
            reasons[count] = _("%(days)d 天内 %(n)d 个订单超时未付款被关闭或拒收") % {
                "days": settings.OMS_RISK_WINDOW_DAYS,
                "n": count,
            }
        return reasons[count]

    if cleared:
        since_clearing = dict(
            timeout_closes.filter(
                customer_mobile__in=cleared,
                cancelled_at__gte=Subquery(
                    CustomerRiskFlag.objects.filter(mobile=OuterRef("customer_mobile")).values("cleared_at")[:1]
                ),
            )
            .values_list("customer_mobile")
            .annotate(n=Count("pk"))
        )
        for mobile in cleared:
            candidates[mobile] = since_clearing.get(mobile, 0)
    to_flag = [
        {
            "mobile": mobile,
            "active": True,
            "timeout_closes": count,
            "flagged_at": now,
            "reason": reason(count),
            "cleared_at": None,
            "cleared_by": None,
            "clear_reason": "",
        }
        for mobile, count in candidates.items()
        if mobile not in active and count >= threshold
    ]
    upsert_rows(
        CustomerRiskFlag,
        to_flag,
        unique="mobile",
        update=["active", "timeout_closes", "flagged_at", "reason", "cleared_at", "cleared_by", "clear_reason"],
    )
    # Flags already up keep their flagged_at (and whatever staff do to them meanwhile): only
    # their count, which follows the window, and its reason change.
    update_per_pk(
        CustomerRiskFlag,
        {
            pk: {"timeout_closes": candidates[mobile], "reason": reason(candidates[mobile])}
            for mobile, pk in active.items()
            if counted[pk] != candidates[mobile]
        },
    )
    return len(to_flag)


def customer_risk_clear(*, flag: CustomerRiskFlag, user, reason: str) -> CustomerRiskFlag:
    """Staff lift a flag, with a reason; the customer may use cash on delivery again."""
    require_permission(user, "orders.clear_riskflag")
    if not reason.strip():
        raise ValidationFailed(fields={"reason": [_("请填写解除原因")]})
    with transaction.atomic():
        flag = CustomerRiskFlag.objects.select_for_update().get(pk=flag.pk)
        flag.active = False
        flag.cleared_at = timezone.now()
        flag.cleared_by = user
        flag.clear_reason = reason.strip()[:200]
        flag.save()
    return flag
