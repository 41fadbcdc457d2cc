"""oms.postgresql: the per-request health check reads the socket instead of sending SELECT 1."""

from __future__ import annotations

import time

import psycopg2.errors
import pytest
from django.db import connections

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class CountingConnection:
    """A psycopg2 connection that counts the cursors opened on it (a statement needs one)."""

    def __init__(self, inner) -> None:
        self.inner, self.cursors = inner, 0

    def cursor(self, *args, **kwargs):
        self.cursors += 1
        return self.inner.cursor(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def own_connection():
    db = connections["default"].copy()
    assert db.settings_dict["CONN_HEALTH_CHECKS"] and type(db).__module__ == "oms.postgresql.base"
    db.ensure_connection()
    try:
        yield db
    finally:
        db.close()


def test_a_healthy_connection_is_kept_without_a_statement(own_connection):
    db = own_connection
    raw = db.connection
    db.connection = counting = CountingConnection(raw)
    db.health_check_done = False
    db.close_if_health_check_failed()
    assert db.connection is counting and counting.cursors == 0 and db.health_check_done
    db.connection = raw
    with db.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_connection_the_server_ended_is_replaced_before_the_request_uses_it(own_connection):
    db = own_connection
    pid = db.connection.get_backend_pid()
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    for _ in range(250):  # the server's goodbye reaches the socket (5 s at most)
        if not db.socket_is_quiet():
            break
        time.sleep(0.02)
    db.health_check_done = False
    db.close_if_health_check_failed()
    assert db.connection is None  # closed here, instead of failing the request's first query
    with db.cursor() as cursor:  # and the request's first query opens a new one
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_connection_left_in_a_failed_transaction_is_not_reused(own_connection):
    db = own_connection
    raw = db.connection
    raw.autocommit = False
    with raw.cursor() as cursor:
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cursor.execute("SELECT 1/0")
    assert not db.socket_is_quiet()
    raw.rollback()
    raw.autocommit = True
    assert db.socket_is_quiet()


def test_a_connection_the_driver_cannot_read_is_not_reused(own_connection):
    db = own_connection
    raw = db.connection

    class Unreadable(CountingConnection):
        def fileno(self):
            raise psycopg2.InterfaceError("connection already closed")

    db.connection = Unreadable(raw)
    try:
        assert not db.socket_is_quiet()
    finally:
        db.connection = raw
