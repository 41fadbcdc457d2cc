"""Which review flags (复核标记) a new order raises. Each one keeps the order in the review
queue: after payment it stays 已付款 until staff approve it (orders.services.order_approve,
or for a manual order first orders.manual.order_manual_approve), and the approval clears
the flags with a note on the timeline.

Pure functions of the request, the price and one fact read before (is the customer under
an active CustomerRiskFlag), so order_create raises them without a query of its own.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.conf import settings

from .models import ReviewFlag

# The storefront row manual orders are entered under (data migration orders/0013_console).
MANUAL_STOREFRONT_CODE = "manual"

_NOT_AN_ADDRESS = re.compile(r"[\W\d_]*")  # only digits, punctuation and spaces


def remark_needs_review(remark: str) -> bool:
    """A customer remark staff should read before the parcel is picked.

    Off with OMS_REVIEW_REMARK=false. With OMS_REVIEW_REMARK_KEYWORDS set, only a remark
    containing one of them counts (the default list catches changes of address, invoices,
    "do not send yet"); with it empty, every remark does.
    """
    remark = (remark or "").strip()
    if not settings.OMS_REVIEW_REMARK or not remark:
        return False
    keywords = [word for word in settings.OMS_REVIEW_REMARK_KEYWORDS if word]
    return not keywords or any(word in remark for word in keywords)


def address_doubt(address: dict[str, Any]) -> str:
    """Why the checks doubt a shipping address ("" when they don't): a street detail shorter
    than OMS_REVIEW_ADDRESS_MIN_LENGTH characters, one with no words at all, or a PO box or
    another place no courier delivers to (OMS_REVIEW_ADDRESS_KEYWORDS)."""
    detail = str(address.get("detail", "")).strip()
    if len(detail) < settings.OMS_REVIEW_ADDRESS_MIN_LENGTH:
        return "too_short"
    if _NOT_AN_ADDRESS.fullmatch(detail):
        return "no_words"
    squeezed = re.sub(r"[\s.]", "", detail).lower()
    for word in settings.OMS_REVIEW_ADDRESS_KEYWORDS:
        if word and re.sub(r"[\s.]", "", word).lower() in squeezed:
            return "po_box"
    return ""


def review_flags_for(
    *,
    storefront_code: str,
    remark: str,
    address: dict[str, Any],
    payable_total: Decimal,
    customer_flagged: bool,
) -> list[str]:
    """The review flags a new order starts with, in a stable order."""
    flags = []
    if payable_total >= settings.OMS_LARGE_ORDER_THRESHOLD:
        flags.append(ReviewFlag.LARGE_AMOUNT.value)
    if customer_flagged:
        flags.append(ReviewFlag.RISK.value)
    if remark_needs_review(remark):
        flags.append(ReviewFlag.REMARK.value)
    if address_doubt(address):
        flags.append(ReviewFlag.ADDRESS.value)
    if storefront_code == MANUAL_STOREFRONT_CODE:
        flags.append(ReviewFlag.MANUAL.value)
    return flags
