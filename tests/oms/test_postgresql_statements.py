"""oms.postgresql.statements: repeated statements are prepared on their connection, and answer the same."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg2.errors
import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from oms.postgresql import statements
from oms.postgresql.statements import PREPARE_AFTER, PreparingConnection, numbered
from orders.models import Order

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_placeholders_are_numbered_and_percent_signs_kept():
    assert numbered("SELECT a FROM t WHERE b = %s AND c IN (%s, %s)") == (
        "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
    )
    assert numbered("SELECT a FROM t WHERE b LIKE %s || '%%' AND c = %s") == (
        "SELECT a FROM t WHERE b LIKE $1 || '%' AND c = $2"
    )
    assert numbered("SELECT '100%%'") == "SELECT '100%'"
    assert numbered("SELECT a FROM t WHERE b = %(b)s") is None


def server_prepared(cursor) -> dict[str, str]:
    cursor.execute("SELECT name, statement FROM pg_prepared_statements")
    return dict(cursor.fetchall())


@pytest.fixture
def own_connection():
    """A connection of its own, in autocommit, with nothing prepared yet."""
    db = connections["default"].copy()
    db.ensure_connection()
    assert isinstance(db.connection, PreparingConnection)
    try:
        yield db
    finally:
        db.close()


def test_a_statement_sent_again_and_again_is_prepared_and_answers_the_same(own_connection):
    sql = "SELECT %s::int + 1, %s::numeric(12,2), %s::timestamptz, %s::text[], %s::text IS NULL, %s::text LIKE '%%b%%'"
    at = dt.datetime(2026, 11, 11, 0, 0, 1, tzinfo=dt.UTC)
    answers = []
    with own_connection.cursor() as cursor:
        for number in range(PREPARE_AFTER + 2):
            cursor.execute(sql, [number, Decimal("9.90"), at, ["a", "b"], None, "abc"])
            answers.append(cursor.fetchone())
        prepared = server_prepared(cursor)
    assert answers == [(n + 1, Decimal("9.90"), at, ["a", "b"], True, True) for n in range(PREPARE_AFTER + 2)]
    assert own_connection.connection.prepared[sql][0] in prepared
    assert sum("$6::text LIKE '%b%'" in text for text in prepared.values()) == 1


def test_a_statement_with_many_values_is_sent_as_text(own_connection):
    """PostgreSQL evaluates an EXECUTE's values one by one: for a sweep's batch of ids that costs
    more than the parse it saves."""
    many = statements.MAX_VALUES + 1
    sql = f"SELECT count(*) FROM (VALUES {', '.join(['(%s::int)'] * many)}) AS v(n)"
    with own_connection.cursor() as cursor:
        for _ in range(PREPARE_AFTER + 1):
            cursor.execute(sql, list(range(many)))
            assert cursor.fetchone() == (many,)
    assert sql in own_connection.connection.refused and sql not in own_connection.connection.prepared


def test_a_statement_the_server_will_not_prepare_leaves_the_transaction_usable(own_connection):
    raw = own_connection.connection
    sql = "SELECT %s IS NULL"  # PostgreSQL cannot tell the parameter's type
    raw.autocommit = False  # as in transaction.atomic(): psycopg2 opens the transaction
    with raw.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE statement_probe (n int) ON COMMIT DROP")
        cursor.execute("INSERT INTO statement_probe VALUES (1)")
        for _ in range(PREPARE_AFTER + 1):
            cursor.execute(sql, [None])
            assert cursor.fetchone() == (True,)
        cursor.execute("SELECT count(*) FROM statement_probe")  # the transaction was not aborted
        assert cursor.fetchone() == (1,)
    raw.commit()
    assert sql in raw.refused and sql not in raw.prepared


def test_a_statement_prepared_in_a_rolled_back_transaction_stays_prepared(own_connection):
    raw = own_connection.connection
    sql = "SELECT %s::int * 2"
    raw.autocommit = False
    with raw.cursor() as cursor:
        for _ in range(PREPARE_AFTER):
            cursor.execute(sql, [21])
    raw.rollback()
    assert sql in raw.prepared
    with raw.cursor() as cursor:
        cursor.execute(sql, [21])
        assert cursor.sent_as == (sql, [21]) and cursor.fetchone() == (42,)


def test_the_least_recently_used_statement_is_deallocated_past_the_limit(own_connection, monkeypatch):
    monkeypatch.setattr(statements, "KEEP", 2)
    queries = [f"SELECT %s::int + {n}" for n in range(3)]
    with own_connection.cursor() as cursor:
        for sql in queries:
            for _ in range(PREPARE_AFTER):
                cursor.execute(sql, [1])
        assert list(own_connection.connection.prepared) == queries[1:]
        assert len(server_prepared(cursor)) == 2
        cursor.execute(queries[0], [1])  # counted again from the start, answered as text
        assert cursor.fetchone() == (1,)


def test_the_queries_django_records_show_the_statement_not_its_execute(own_connection):
    sql = "SELECT %s::int"
    with CaptureQueriesContext(own_connection) as captured, own_connection.cursor() as cursor:
        for _ in range(PREPARE_AFTER + 1):
            cursor.execute(sql, [7])
    assert sql in own_connection.connection.prepared
    assert [query["sql"] for query in captured.captured_queries] == ["SELECT 7::int"] * (PREPARE_AFTER + 1)


def test_a_named_cursor_streams_a_prepared_statement_as_text():
    for number in range(3):
        Order.objects.filter(pk=-number).exists()
    with transaction.atomic():
        for _ in range(PREPARE_AFTER + 1):  # the same SELECT, on server-side cursors
            assert list(Order.objects.filter(pk__gt=0).iterator(chunk_size=2)) == []
        assert list(Order.objects.filter(pk__gt=0)) == []  # ... and prepared on a plain one


def test_migrating_deallocates_what_was_prepared_and_prepares_nothing_meanwhile():
    with connection.cursor() as cursor:
        for _ in range(PREPARE_AFTER):
            cursor.execute("SELECT %s::int", [1])
        assert server_prepared(cursor)
    seen = []
    original = PreparingConnection.pause

    def pause(self):
        original(self)
        with connection.cursor() as cursor:
            for _ in range(PREPARE_AFTER):
                cursor.execute("SELECT %s::int", [2])
            seen.append(server_prepared(cursor))

    PreparingConnection.pause = pause
    try:
        call_command("migrate", "orders", verbosity=0)
    finally:
        PreparingConnection.pause = original
    assert seen and seen[0] == {}
    assert connection.connection.paused is False


def test_prepare_statements_off_gives_a_plain_connection():
    db = connections["default"].copy()
    db.settings_dict["OPTIONS"] = {**db.settings_dict["OPTIONS"], "prepare_statements": False}
    db.ensure_connection()
    try:
        assert not isinstance(db.connection, PreparingConnection)
        with db.cursor() as cursor:
            for _ in range(PREPARE_AFTER + 1):
                cursor.execute("SELECT %s::int", [1])
            assert server_prepared(cursor) == {}
    finally:
        db.close()


# --- statements held back until the next one ------------------------------------------------


def in_transaction_of(db):
    """The raw connection, in a transaction, with a scratch table of its own."""
    raw = db.connection
    raw.autocommit = False
    with raw.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE deferred_probe (n int PRIMARY KEY, note text) ON COMMIT DROP")
    return raw


@pytest.fixture
def in_transaction(own_connection):
    return in_transaction_of(own_connection)


def test_deferred_statements_travel_with_the_next_which_answers_as_alone(in_transaction):
    raw = in_transaction
    raw.defer("INSERT INTO deferred_probe VALUES (%s, %s)", [1, "50%"])
    raw.defer("INSERT INTO deferred_probe VALUES (%s, %s)", [2, "b"])
    with raw.cursor() as cursor:
        cursor.execute("SELECT n, note FROM deferred_probe WHERE n >= %s ORDER BY n", [1])
        assert cursor.fetchall() == [(1, "50%"), (2, "b")]
        sql, params = cursor.sent_as
        assert (
            sql.count("INSERT INTO deferred_probe") == 2
            and sql.endswith("ORDER BY n")
            and params == [1, "50%", 2, "b", 1]
        )
        assert raw.deferred == []
        raw.defer("UPDATE deferred_probe SET note = %s WHERE n = %s", ["c", 2])
        cursor.execute("SELECT note, '100%' FROM deferred_probe WHERE n = 2")  # no values: % kept as written
        assert cursor.fetchall() == [("c", "100%")]
    raw.rollback()


def test_the_commit_sends_what_is_held_back_and_a_rollback_drops_it(own_connection):
    raw = own_connection.connection
    with raw.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS deferred_kept (n int PRIMARY KEY)")
        cursor.execute("TRUNCATE deferred_kept")
    try:
        raw.autocommit = False
        raw.defer("INSERT INTO deferred_kept VALUES (%s)", [1])
        raw.commit()
        raw.defer("INSERT INTO deferred_kept VALUES (%s)", [2])
        raw.rollback()
        assert raw.deferred == []
        with raw.cursor() as cursor:
            cursor.execute("SELECT n FROM deferred_kept")
            assert cursor.fetchall() == [(1,)]
    finally:
        raw.rollback()
        raw.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute("DROP TABLE deferred_kept")


def test_an_error_in_a_deferred_statement_is_raised_by_the_next(in_transaction):
    raw = in_transaction
    with raw.cursor() as cursor:
        cursor.execute("INSERT INTO deferred_probe VALUES (%s, %s)", [1, "a"])
        raw.defer("INSERT INTO deferred_probe VALUES (%s, %s)", [1, "again"])
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cursor.execute("SELECT 1")
    assert raw.deferred == []
    raw.rollback()


def test_a_named_cursor_sends_the_deferred_statements_first(in_transaction):
    raw = in_transaction
    raw.defer("INSERT INTO deferred_probe VALUES (%s, %s)", [7, "x"])
    with raw.cursor("stream") as cursor:
        cursor.execute("SELECT n FROM deferred_probe")
        assert cursor.fetchall() == [(7,)]
    raw.rollback()


def test_defer_is_only_for_a_transaction(own_connection):
    with pytest.raises(psycopg2.ProgrammingError, match="only inside a transaction"):
        own_connection.connection.defer("SELECT 1", [])


def test_django_records_the_deferred_statements_with_the_one_that_carried_them(own_connection):
    raw = in_transaction_of(own_connection)
    raw.defer("INSERT INTO deferred_probe VALUES (%s, %s)", [3, "c"])
    with CaptureQueriesContext(own_connection) as captured, own_connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM deferred_probe WHERE n = %s", [3])
        assert cursor.fetchone() == (1,)
    (query,) = captured.captured_queries
    assert query["sql"] == (
        "INSERT INTO deferred_probe VALUES (3, 'c'); SELECT count(*) FROM deferred_probe WHERE n = 3"
    )
    raw.rollback()
