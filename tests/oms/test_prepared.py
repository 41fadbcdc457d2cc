"""oms.prepared.PreparedQuery and oms.bulk.insert_new: the compiled-once reads and the plain
INSERT the order intake runs, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory.models import Sku, StockLevel, Warehouse
from oms.bulk import insert_new
from oms.prepared import PreparedQuery

pytestmark = pytest.mark.django_db

SKUS_BY_CODE = PreparedQuery(lambda codes: Sku.objects.filter(code__in=codes, active=True).order_by("code"))
SKU_ID = PreparedQuery(lambda code: Sku.objects.filter(code=code).values_list("pk", "name")[:1])
LEVELS_FOR_UPDATE = PreparedQuery(
    lambda sku_ids, warehouse_code: (
        StockLevel.objects.select_for_update(of=("self",))
        .filter(sku_id__in=sku_ids, warehouse__code=warehouse_code, warehouse__active=True)
        .order_by("pk")
    )
)


@pytest.fixture
def catalogue():
    skus = [Sku.objects.create(code=f"P-{i}", name=f"商品{i}", price=Decimal("9.90")) for i in range(4)]
    Sku.objects.filter(code="P-3").update(active=False)
    return skus


def test_rows_and_objects_are_what_the_queryset_returns(catalogue):
    for codes in (["P-0"], ["P-2", "P-0", "P-3"], ["P-1", "NOPE"], ["P-0", "P-1", "P-2", "P-3"]):
        expected = list(Sku.objects.filter(code__in=codes, active=True).order_by("code"))
        got = SKUS_BY_CODE.objects(codes=codes)
        assert got == expected
        assert [vars_of(sku) for sku in got] == [vars_of(sku) for sku in expected]
        assert all(not sku._state.adding and sku._state.db == "default" for sku in got)
    assert SKU_ID.rows(code="P-1") == [(catalogue[1].pk, "商品1")]
    assert SKU_ID.rows(code="x' OR '1'='1") == []


def vars_of(sku: Sku) -> dict:
    return {field.attname: getattr(sku, field.attname) for field in Sku._meta.concrete_fields}


def test_each_shape_is_compiled_once_and_then_only_rebound(catalogue):
    query = PreparedQuery(lambda codes: Sku.objects.filter(code__in=codes).order_by("code"))
    calls = []
    build = query.build
    query.build = lambda **kw: calls.append(kw) or build(**kw)
    for codes in (["P-0", "P-1"], ["P-2", "P-3"], ["P-1"], ["P-3"], ["P-0", "P-1"]):
        with CaptureQueriesContext(connection) as queries:
            assert [sku.code for sku in query.objects(codes=codes)] == sorted(codes)
        assert len(queries) == 1
    assert len(calls) == 2  # one list of two codes, one of one


def test_the_constants_stay_as_compiled(catalogue):
    # active=True is in the queryset, not an argument: P-3 is inactive whatever is asked for.
    assert SKUS_BY_CODE.objects(codes=["P-3"]) == []


def test_an_argument_changed_on_its_way_to_the_statement_is_refused(catalogue):
    prefix = PreparedQuery(lambda code: Sku.objects.filter(code__startswith=code))
    with pytest.raises(ValueError, match="code"):
        prefix.rows(code="P-")
    with pytest.raises(TypeError):  # an instance, not its key
        PreparedQuery(lambda sku: Sku.objects.filter(pk=sku)).rows(sku=catalogue[0])


def test_a_locking_read_runs_only_in_a_transaction(catalogue):
    north = Warehouse.objects.create(code="N", name="北仓")
    level = StockLevel.objects.create(sku=catalogue[0], warehouse=north, on_hand=5)
    StockLevel.objects.create(sku=catalogue[1], warehouse=Warehouse.objects.create(code="S", name="南仓"), on_hand=5)
    with transaction.atomic():
        locked = LEVELS_FOR_UPDATE.objects(sku_ids=[catalogue[0].pk, catalogue[1].pk], warehouse_code="N")
        assert locked == [level] and locked[0].on_hand == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not connection.features.has_select_for_update, reason="no row locks here")
def test_a_locking_read_outside_a_transaction_is_refused_like_the_queryset_is():
    with pytest.raises(TransactionManagementError):
        list(StockLevel.objects.select_for_update().filter(sku_id__in=[1, 2], warehouse__code="N"))
    with transaction.atomic():
        LEVELS_FOR_UPDATE.objects(sku_ids=[1, 2], warehouse_code="N")  # compiled inside one
    with pytest.raises(TransactionManagementError):
        LEVELS_FOR_UPDATE.objects(sku_ids=[1, 2], warehouse_code="N")


def test_insert_new_writes_what_save_writes_in_one_statement():
    before = timezone.now()
    skus = [Sku(code=f"I-{i}", name="新品", price=Decimal("1.50"), active=i != 1) for i in range(3)]
    with CaptureQueriesContext(connection) as queries:
        insert_new(skus)
    assert len(queries) == (1 if connection.features.can_return_rows_from_bulk_insert else 3)
    assert len({sku.pk for sku in skus}) == 3 and all(not sku._state.adding for sku in skus)
    saved = Sku(code="I-saved", name="新品", price=Decimal("1.50"))
    saved.save()
    for sku in Sku.objects.filter(pk__in=[sku.pk for sku in skus]):
        # db_default (bin_location, barcode), default (no_reason_return) and auto_now_add as save() gives them.
        assert (sku.bin_location, sku.barcode, sku.no_reason_return) == ("", "", True)
        assert sku.created_at >= before
        assert sku.active is (sku.code != "I-1")
    assert [s.code for s in Sku.objects.filter(pk__in=[sku.pk for sku in skus]).order_by("pk")] == ["I-0", "I-1", "I-2"]
    insert_new([])


def test_insert_new_saves_one_by_one_where_the_database_cannot_return_keys(monkeypatch):
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)
    skus = [Sku(code=f"F-{i}", name="新品", price=Decimal("2.00")) for i in range(2)]
    with CaptureQueriesContext(connection) as queries:
        insert_new(skus)
    assert len([q for q in queries if q["sql"].startswith("INSERT")]) == 2
    assert [s.pk for s in skus] == list(
        Sku.objects.filter(code__startswith="F-").order_by("pk").values_list("pk", flat=True)
    )
