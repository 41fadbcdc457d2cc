"""One Redis connection kept per process, for the hot paths that send one command per request."""

from __future__ import annotations

import os
import threading
from typing import Any

import redis


class KeptConnection:
    """A redis-py `Connection` made with `pool`'s settings and kept by this process.

    For the paths that send one command per request: a Celery job's `LPUSH` (oms.jobs) and
    the storefront throttle's `INCR` (orders.api.auth). `redis.Redis.execute_command` spent
    about 130 µs of CPU per command on the development machine: the pool's lock and
    bookkeeping, the retry wrapper, the argument checks. The connection's own
    `send_command`/`read_response`, which parse the same replies and raise the same errors,
    spent about 55 µs (docs/performance.md).

    The connection is made on first use in each process and thread (a forked worker makes its
    own, and so does each thread of a threaded server or test). A command that fails because
    the connection broke (Redis restarted, an idle connection dropped) is sent once more on a
    new connection, as the client's default retry would; a timeout is raised at once.
    """

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.pool = pool
        self._local = threading.local()

    def execute(self, *args: Any) -> Any:
        for attempt in (1, 2):
            connection = self._current()
            try:
                connection.send_command(*args)
                return connection.read_response()
            except redis.ConnectionError:
                self.close()
                if attempt == 2:
                    raise
            except redis.TimeoutError:
                self.close()
                raise
        raise AssertionError("unreachable")

    def _current(self) -> Any:
        kept = getattr(self._local, "kept", None)
        if kept is None or kept[0] != os.getpid():  # a copy inherited from the parent is left alone
            kept = self._local.kept = (os.getpid(), self.pool.make_connection())
        return kept[1]

    def close(self) -> None:
        """Drop this thread's connection (it is made again on the next command)."""
        kept = getattr(self._local, "kept", None)
        self._local.kept = None
        if kept is not None and kept[0] == os.getpid():
            kept[1].disconnect()
