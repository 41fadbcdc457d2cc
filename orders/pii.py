"""Customers' personal data (003 §3.3): mobile numbers and street addresses are shown masked,
and revealing them on an order is an explicit, logged action (orders.services.order_reveal_pii).
"""

from __future__ import annotations

PII_FIELDS = ("customer_mobile", "receiver_phone", "address_detail")


def mask_mobile(mobile: str) -> str:
    """13800138000 → 138****8000; anything shorter keeps only its last two characters."""
    if len(mobile) >= 7:
        return f"{mobile[:3]}****{mobile[-4:]}"
    return "*" * max(len(mobile) - 2, 0) + mobile[-2:]


def mask_address(detail: str) -> str:
    """文三路100号 → 文三**** : enough to tell addresses apart, not to find the door."""
    if not detail:
        return ""
    return f"{detail[:2]}****"
