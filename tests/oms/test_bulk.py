"""oms.bulk: the set-based writes the sweeps use, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory.models import StockLevel
from oms.bulk import update_per_pk, upsert_rows
from orders.models import CustomerRiskFlag

pytestmark = pytest.mark.django_db

FLAG_FIELDS = ["active", "timeout_closes", "flagged_at", "reason", "cleared_at", "cleared_by", "clear_reason"]


def flag_row(mobile: str, closes: int, at) -> dict:
    return {
        "mobile": mobile,
        "active": True,
        "timeout_closes": closes,
        "flagged_at": at,
        "reason": f"{closes} 单超时",
        "cleared_at": None,
        "cleared_by": None,
        "clear_reason": "",
    }


def test_upsert_inserts_new_rows_and_updates_taken_ones_in_one_statement(admin_user):
    earlier, now = timezone.now() - timedelta(days=3), timezone.now()
    cleared = CustomerRiskFlag.objects.create(
        mobile="13900000001",
        active=False,
        timeout_closes=3,
        flagged_at=earlier,
        reason="旧",
        cleared_at=earlier,
        cleared_by=admin_user,
        clear_reason="已核实",
    )
    with CaptureQueriesContext(connection) as queries:
        written = upsert_rows(
            CustomerRiskFlag,
            [flag_row("13900000001", 4, now), flag_row("13900000002", 5, now)],
            unique="mobile",
            update=FLAG_FIELDS,
        )
    assert len(queries) == 1 and written == 2
    cleared.refresh_from_db()
    assert (cleared.active, cleared.timeout_closes, cleared.flagged_at, cleared.reason) == (True, 4, now, "4 单超时")
    assert (cleared.cleared_at, cleared.cleared_by, cleared.clear_reason) == (None, None, "")
    new = CustomerRiskFlag.objects.get(mobile="13900000002")
    assert (new.active, new.timeout_closes, new.flagged_at) == (True, 5, now)
    assert upsert_rows(CustomerRiskFlag, [], unique="mobile", update=FLAG_FIELDS) == 0


def test_update_per_pk_gives_each_row_its_own_values_and_leaves_the_rest(make_sku):
    levels = [make_sku(code, stock=10).stock_levels.get() for code in ("A", "B", "C")]
    StockLevel.objects.update(reserved=5)
    at = timezone.now() - timedelta(hours=1)
    with CaptureQueriesContext(connection) as queries:
        updated = update_per_pk(
            StockLevel,
            {levels[0].pk: {"reserved": 1, "updated_at": at}, levels[2].pk: {"reserved": 3, "updated_at": at}},
        )
    assert len(queries) == 1 and updated == 2
    assert {level.sku.code: (level.reserved, level.updated_at == at) for level in StockLevel.objects.all()} == {
        "A": (1, True),
        "B": (5, False),
        "C": (3, True),
    }
    assert update_per_pk(StockLevel, {}) == 0
