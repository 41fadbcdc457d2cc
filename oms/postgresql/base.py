"""Django's PostgreSQL backend, with a health check that needs no round trip.

With CONN_HEALTH_CHECKS, Django checks a persistent connection at the first query of every
request by sending `SELECT 1`: one more statement for the server and a round trip for the
worker on every storefront order and gateway notify. A connection the server has ended (a
restart, `pg_terminate_backend`, an idle timeout) has sent its goodbye and closed its end, so
its socket is readable; a healthy idle one has nothing to read. That is what is checked here,
with `select` on the socket and the driver's own state. After an error in a request, Django's
full check (`is_usable`, the `SELECT 1`) still decides whether the connection is kept.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import is_psycopg3

if not is_psycopg3:
    import psycopg2
    from psycopg2 import extensions

    _LIVE_STATES = (extensions.TRANSACTION_STATUS_IDLE, extensions.TRANSACTION_STATUS_INTRANS)


class DatabaseWrapper(base.DatabaseWrapper):
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
