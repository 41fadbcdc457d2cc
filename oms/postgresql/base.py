"""Django's PostgreSQL backend, with a health check that needs no round trip, and prepared statements.

With CONN_HEALTH_CHECKS, Django checks a persistent connection at the first query of every
request by sending `SELECT 1`: one more statement for the server and a round trip for the
worker on every storefront order and gateway notify. A connection the server has ended (a
restart, `pg_terminate_backend`, an idle timeout) has sent its goodbye and closed its end, so
its socket is readable; a healthy idle one has nothing to read. That is what is checked here,
with `select` on the socket and the driver's own state. After an error in a request, Django's
full check (`is_usable`, the `SELECT 1`) still decides whether the connection is kept.

With psycopg2, statements sent again and again are prepared on their connection
(`oms.postgresql.statements`); `OPTIONS["prepare_statements"] = False` (the environment's
`DB_PREPARE_STATEMENTS=false`) turns that off, e.g. behind a transaction-mode PgBouncer.
"""

from __future__ import annotations

import select

from django.db import connections
from django.db.backends.postgresql import base, operations
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from django.db.models.signals import post_migrate, pre_migrate

if not is_psycopg3:
    import psycopg2
    from psycopg2 import extensions

    from oms.postgresql.statements import PreparingConnection, PreparingCursor

    _LIVE_STATES = (extensions.TRANSACTION_STATUS_IDLE, extensions.TRANSACTION_STATUS_INTRANS)


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        sent_as = getattr(cursor, "sent_as", None)
        if sent_as is not None:  # sent as EXECUTE, or after deferred statements: show what it ran
            return cursor.mogrify(*sent_as).decode()
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def get_connection_params(self):
        params = super().get_connection_params()
        prepare = params.pop("prepare_statements", True)
        if prepare and not is_psycopg3:
            params.update(connection_factory=PreparingConnection, cursor_factory=PreparingCursor)
        return params

    def close_if_health_check_failed(self) -> None:
        if is_psycopg3:  # this check reads psycopg2's connection; psycopg 3 keeps Django's
            return super().close_if_health_check_failed()
        if self.pool or self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if not self.socket_is_quiet():
            self.close()
        self.health_check_done = True

    def socket_is_quiet(self) -> bool:
        """Open, not in a failed or unknown transaction state, and nothing waiting to be read."""
        connection = self.connection
        try:
            if connection.closed or connection.get_transaction_status() not in _LIVE_STATES:
                return False
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError, psycopg2.Error):
            return False
        return not readable


def _migrating(sender, using, **kwargs) -> None:
    """A migration can change what a prepared statement returns: none is kept or made meanwhile."""
    connection = connections[using].connection
    if not is_psycopg3 and isinstance(connection, PreparingConnection):
        connection.pause()


def _migrated(sender, using, **kwargs) -> None:
    connection = connections[using].connection
    if not is_psycopg3 and isinstance(connection, PreparingConnection):
        connection.paused = False


pre_migrate.connect(_migrating, dispatch_uid="oms.postgresql.migrating")
post_migrate.connect(_migrated, dispatch_uid="oms.postgresql.migrated")
