"""oms.bulk: the set-based writes the sweeps use, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory.models import Sku, StockLevel
from oms.bulk import insert_new, new_ids, update_per_pk, upsert_rows
from oms.prepared import PreparedQuery
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


# --- keys drawn before the INSERT, and statements held back -------------------------------


@pytest.mark.postgres
def test_keys_are_drawn_once_per_read_however_many_rows_it_returns(make_sku):
    for index in range(3):
        make_sku(f"K-{index}", "1.00")
    read = PreparedQuery(
        lambda codes: Sku.objects.filter(code__in=codes).annotate(one=new_ids(Sku), many=new_ids(Sku, len(codes)))
    )
    first = read.objects(codes=["K-0", "K-1", "K-2"])
    assert len(first) == 3 and len({(sku.one[0], tuple(sku.many)) for sku in first}) == 1
    second = read.objects(codes=["K-0", "K-1", "K-2"])[0]
    drawn = [first[0].one[0], *first[0].many, second.one[0], *second.many]
    assert len(drawn) == 8 and len(set(drawn)) == 8
    assert not Sku.objects.filter(pk__in=drawn).exists()


@pytest.mark.postgres
def test_rows_with_drawn_keys_are_written_with_them_when_the_transaction_goes_on(make_sku):
    make_sku("D-0", "1.00")
    key_a, key_b = Sku.objects.annotate(k=new_ids(Sku, 2)).values_list("k", flat=True)[0]
    skus = [Sku(pk=key_a, code="DK-A", name="甲", price="1.00"), Sku(pk=key_b, code="DK-B", name="乙", price="2.00")]
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        insert_new(skus, defer=True)
        assert connection.connection.deferred and len(captured) == 0  # held back
        assert all(not sku._state.adding for sku in skus)
        assert sorted(Sku.objects.filter(code__startswith="DK-").values_list("pk", flat=True)) == [key_a, key_b]
    assert len(captured) == 1  # the read carried the INSERT


@pytest.mark.django_db(transaction=True)
def test_a_deferred_write_outside_a_transaction_runs_at_once(make_sku):
    sku = make_sku("NOW-1", "3.00")
    level = StockLevel.objects.get(sku=sku)
    assert update_per_pk(StockLevel, {level.pk: {"reserved": 2}}, defer=True) == 1
    assert StockLevel.objects.get(pk=level.pk).reserved == 2


def test_objects_with_and_without_keys_are_not_mixed(make_sku):
    with pytest.raises(ValueError, match="some Sku objects have keys"):
        insert_new([Sku(pk=10**12, code="M-1", name="甲", price="1.00"), Sku(code="M-2", name="乙", price="1.00")])
