"""oms.prepared.PreparedQuery, oms.bulk.insert_new and oms.bulk.save_fields: the compiled-once
reads and the kept INSERT and UPDATE statements of order intake and notify, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef, Q, Subquery, Value
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_fsm import ConcurrentTransition

from inventory.models import Sku, StockLevel, Warehouse
from oms.bulk import insert_new, insert_new_unless_conflict, save_fields
from oms.prepared import PreparedQuery
from orders.models import Order, OrderStatus
from payments.models import PaymentNotification

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


def test_objects_carry_their_annotations_as_the_queryset_does(catalogue):
    """order_create reads its SKUs with the replay check and the risk flag riding on each row."""

    def annotated(codes, name):
        return (
            Sku.objects.filter(code__in=codes)
            .order_by("code")
            .annotate(
                twin=Subquery(Sku.objects.filter(name=name).order_by().values("pk")[:1]),
                inactive_exists=Exists(Sku.objects.filter(active=False)),
                same=Exists(Sku.objects.filter(pk=OuterRef("pk"), name=name)),
                label=Value("x"),
            )
        )

    other = PreparedQuery(annotated)
    for codes, name in ((["P-0", "P-1"], "商品1"), (["P-2"], "nobody")):
        got = other.objects(codes=codes, name=name)
        expected = list(annotated(codes, name))
        assert [vars_of(sku) for sku in got] == [vars_of(sku) for sku in expected]
        assert [(s.twin, s.inactive_exists, s.same, s.label) for s in got] == [
            (e.twin, e.inactive_exists, e.same, e.label) for e in expected
        ]
    assert [(s.twin, s.same) for s in other.objects(codes=["P-0", "P-1"], name="商品1")] == [
        (catalogue[1].pk, False),
        (catalogue[1].pk, True),
    ]


def test_objects_follow_select_related_as_the_queryset_does(catalogue):
    """One level of forward relations, read from the same row: the statement the notify uses to
    take a payment and its order (tests/payments/test_notify.py checks its lock order)."""
    warehouse = Warehouse.objects.create(code="HZ", name="杭州仓")
    for sku in catalogue[:2]:
        StockLevel.objects.create(sku=sku, warehouse=warehouse, on_hand=5)
    levels = PreparedQuery(
        lambda code: StockLevel.objects.select_related("sku", "warehouse").filter(sku__code=code).order_by()
    )
    [got] = levels.objects(code="P-1")
    [expected] = StockLevel.objects.select_related("sku", "warehouse").filter(sku__code="P-1")
    with CaptureQueriesContext(connection) as queries:
        assert (got.pk, got.sku, got.warehouse) == (expected.pk, catalogue[1], warehouse)
        assert vars_of(got.sku) == vars_of(expected.sku)
        assert got.warehouse.name == "杭州仓" and not got.sku._state.adding
    assert len(queries) == 0  # both came with the row
    assert levels.objects(code="P-3") == []


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


def test_an_argument_used_twice_is_bound_twice(catalogue):
    either = PreparedQuery(lambda code: Sku.objects.filter(Q(code=code) | Q(name=code)).values_list("code"))
    assert either.rows(code="P-1") == [("P-1",)]
    assert either.rows(code="商品2") == [("P-2",)]


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


@pytest.mark.parametrize("returns_keys", [True, False])
def test_insert_new_unless_conflict_inserts_once_and_leaves_the_transaction_usable(monkeypatch, returns_keys):
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", returns_keys)

    def copy() -> PaymentNotification:
        return PaymentNotification(channel="alipay", dedupe_key="N-1", raw_body="a=1", headers={}, verified=True)

    with transaction.atomic():
        first = copy()
        assert insert_new_unless_conflict(first) is True and first.pk and not first._state.adding
        second = copy()
        assert insert_new_unless_conflict(second) is False and second.pk is None
        # the transaction goes on: no error was raised inside it
        assert PaymentNotification.objects.filter(dedupe_key="N-1").count() == 1
    assert PaymentNotification.objects.get(dedupe_key="N-1").pk == first.pk


def test_save_fields_writes_what_save_with_update_fields_writes(create_order):
    order = Order.objects.get(order_no=create_order()["order_no"])
    before = order.updated_at
    order.remark = "改：请放门卫"
    with CaptureQueriesContext(connection) as queries:
        save_fields(order, ["remark", "updated_at"])
    assert len(queries) == 1 and queries[0]["sql"].startswith("UPDATE")
    fresh = Order.objects.get(pk=order.pk)
    assert fresh.remark == "改：请放门卫" and fresh.updated_at == order.updated_at > before
    with CaptureQueriesContext(connection) as queries:
        save_fields(order, [])  # as save(update_fields=[]): nothing
    assert len(queries) == 0


def test_save_fields_refuses_a_transition_someone_else_committed_meanwhile(create_order):
    """As django-fsm's ConcurrentTransitionMixin.save: the row is matched on the state it was read in."""
    no = create_order()["order_no"]
    stale, fresh = Order.objects.get(order_no=no), Order.objects.get(order_no=no)
    fresh.cancel(reason="customer_changed_mind", at=timezone.now())
    save_fields(fresh, ["status", "cancel_reason", "cancelled_at", "updated_at"])
    stale.pay(amount=stale.payable_total, at=timezone.now())
    with pytest.raises(ConcurrentTransition):
        save_fields(stale, ["status", "paid_total", "paid_at", "updated_at"])
    assert Order.objects.get(order_no=no).status == OrderStatus.CANCELLED
    # The saved instance now counts from its new state: a second save of it goes through.
    fresh.remark = "已取消"
    save_fields(fresh, ["remark"])


def test_save_fields_on_a_row_that_is_gone_raises_like_save(create_order):
    order = Order.objects.get(order_no=create_order()["order_no"])
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.CANCELLED)
    with pytest.raises(ConcurrentTransition):
        save_fields(order, ["remark"])
    note = PaymentNotification.objects.create(channel="alipay", raw_body="x", headers={})
    PaymentNotification.objects.filter(pk=note.pk).delete()
    with pytest.raises(DatabaseError):
        save_fields(note, ["outcome"])
