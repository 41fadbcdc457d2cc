"""Server-side prepared statements for psycopg2: what PostgreSQL parses and plans once per connection.

psycopg2 sends every statement as text, so PostgreSQL parses, analyses and plans each one again,
though a worker sends the same few dozen statements over and over (an order's INSERTs, its stock
lock, a notify's reads) with only the values changed. For those short statements that work is
most of what the server does: in-process, an order placed cost its backend 1.45 ms of CPU with
plain statements and 0.89 ms with the same statements prepared (docs/performance.md).

So a statement sent `PREPARE_AFTER` times on one connection is prepared there (`PREPARE oms_N
AS ...`, Django's `%s` placeholders turned into `$1, $2, ...`), and from then on is sent as
`EXECUTE oms_N (values)`. The values are still quoted by psycopg2 as before; PostgreSQL converts
each to the type it inferred for the parameter. Only SELECT, INSERT, UPDATE and DELETE are
prepared, and only on ordinary cursors with positional parameters (a named cursor declares its
statement, and `EXECUTE` cannot be declared), with at most `MAX_VALUES` of them.

A statement PostgreSQL will not prepare (a parameter whose type it cannot infer, say) is sent
as text from then on. Inside a transaction the attempt runs under its own savepoint, so a
refusal leaves the transaction as it was. At most `KEEP` statements stay prepared on a
connection; the least recently used is deallocated for a new one. Migrating deallocates them
all and prepares none until it is done (`oms.postgresql.base`), since a changed table can change a statement's result.

Prepared statements live in the server session, so they do not survive a transaction-mode
connection pooler (PgBouncer before 1.21): set `DB_PREPARE_STATEMENTS=false` behind one.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

import psycopg2
from psycopg2 import extensions

PREPARE_AFTER = 3  # sends of one statement on one connection before it is prepared
KEEP = 200  # statements prepared per connection at most
# Values per statement at most: PostgreSQL evaluates an EXECUTE's values one by one, and for a
# sweep's batch of 500 ids that cost more than parsing them in the text (docs/performance.md).
MAX_VALUES = 128
_SEEN_MAX = 5_000  # statements counted per connection before the counts start over
_KINDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
_SAVEPOINT = "oms_prepare"


def numbered(sql: str) -> str | None:
    """`sql` with psycopg2's `%s` placeholders as `$1, $2, ...` and `%%` as `%`; None for
    anything else after a `%` (named placeholders), which is left to psycopg2."""
    parts = sql.split("%")
    out = [parts[0]]
    number = 0
    index = 1
    while index < len(parts):
        part = parts[index]
        if part.startswith("s"):
            number += 1
            out.append(f"${number}{part[1:]}")
        elif part == "" and index + 1 < len(parts):  # "%%": a literal percent sign
            out.append("%" + parts[index + 1])
            index += 1
        else:
            return None
        index += 1
    return "".join(out)


class PreparingConnection(extensions.connection):
    """A psycopg2 connection that remembers what it has prepared (see the module's text)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: OrderedDict[str, tuple[str, str]] = OrderedDict()  # sql -> (name, EXECUTE text)
        self.seen: dict[str, int] = {}
        self.refused: set[str] = set()
        self.names = itertools.count(1)
        self.paused = False
        self.deferred: list[tuple[str, list]] = []

    def defer(self, sql: str, params) -> None:
        """Hold back a statement whose answer nobody reads, inside a transaction: it is sent in
        one message with the next statement (which answers as it would alone), or before the
        commit. An error in it is raised there. Rolled back, it is dropped with the rest."""
        if self.autocommit:
            raise psycopg2.ProgrammingError("defer only inside a transaction")
        self.deferred.append((sql, list(params)))

    def commit(self) -> None:
        if self.deferred:
            with self.cursor() as cursor:
                cursor.send_deferred()
        super().commit()

    def rollback(self) -> None:
        self.deferred.clear()
        super().rollback()

    def close(self) -> None:
        self.deferred.clear()
        super().close()

    def pause(self) -> None:
        """Deallocate everything prepared here, and prepare nothing until `paused` is False again."""
        self.paused = True
        if self.prepared and not self.closed:
            with extensions.cursor(self) as cursor:
                cursor.execute("DEALLOCATE ALL")
        self.prepared.clear()
        self.seen.clear()
        self.refused.clear()


class PreparingCursor(extensions.cursor):
    """Sends a statement its connection has prepared as `EXECUTE`, and prepares a repeated one;
    statements the connection holds back (`PreparingConnection.defer`) go first, in one message."""

    #: (the statements as written, their values) when what was sent differs from what was
    #: asked: an EXECUTE, or deferred statements in front (for Django's last_executed_query).
    sent_as: tuple[str, list] | None = None

    def execute(self, query, vars=None):
        self.sent_as = None
        connection = self.connection
        if connection.deferred:
            return self._execute_after_deferred(connection, query, vars)
        if self.name is not None or type(vars) not in (list, tuple):
            return super().execute(query, vars)
        text = self._text_for(connection, query, len(vars))
        if text is query:
            return super().execute(query, vars)
        self.sent_as = (query, vars)
        return super().execute(text, vars)

    def _text_for(self, connection: PreparingConnection, query: str, count: int) -> str:
        """What runs `query`: its EXECUTE once prepared (perhaps now), else `query` itself."""
        found = connection.prepared.get(query)
        if found is None:
            found = self._maybe_prepare(connection, query, count)
            if found is None:
                return query
        else:
            connection.prepared.move_to_end(query)
        return found[1]

    def send_deferred(self) -> None:
        """Send what the connection holds back, alone (before a commit)."""
        connection = self.connection
        deferred, connection.deferred = connection.deferred, []
        texts, params = self._texts(connection, deferred)
        self.sent_as = ("; ".join(sql for sql, _ in deferred), params)
        super().execute("; ".join(texts), params)

    def _texts(self, connection: PreparingConnection, statements: list[tuple[str, list]]) -> tuple[list[str], list]:
        texts, params = [], []
        for sql, values in statements:
            texts.append(self._text_for(connection, sql, len(values)))
            params.extend(values)
        return texts, params

    def _execute_after_deferred(self, connection: PreparingConnection, query, vars):
        if self.name is not None or not (vars is None or type(vars) in (list, tuple)):
            # A named cursor declares its one statement, and named values do not mix with the
            # deferred ones' positional values: those go first, on their own.
            with connection.cursor() as plain:
                plain.send_deferred()
            return super().execute(query, vars)
        deferred, connection.deferred = connection.deferred, []
        if vars is None:
            vars, query = [], query.replace("%", "%%")  # it is about to be formatted with values
        deferred.append((query, list(vars)))
        texts, params = self._texts(connection, deferred)
        self.sent_as = ("; ".join(sql for sql, _ in deferred), params)
        return super().execute("; ".join(texts), params)

    def _maybe_prepare(self, connection: PreparingConnection, query: str, count: int) -> tuple[str, str] | None:
        seen = connection.seen
        times = seen.get(query, 0) + 1
        if times < PREPARE_AFTER:
            if len(seen) >= _SEEN_MAX:
                seen.clear()
            seen[query] = times
            return None
        if connection.paused or query in connection.refused or not query.lstrip()[:6].upper().startswith(_KINDS):
            return None
        if count > MAX_VALUES:
            connection.refused.add(query)
            return None
        status = connection.get_transaction_status()
        if status not in (extensions.TRANSACTION_STATUS_IDLE, extensions.TRANSACTION_STATUS_INTRANS):
            return None
        body = numbered(query)
        if body is None:
            connection.refused.add(query)
            return None
        name = f"oms_{next(connection.names)}"
        statements = [f"PREPARE {name} AS {body}"]
        if len(connection.prepared) >= KEEP:  # after the PREPARE: a refused one deallocates nothing
            _, (oldest, _) = connection.prepared.popitem(last=False)
            statements.append(f"DEALLOCATE {oldest}")
        # Not autocommit: psycopg2 opens a transaction before the first statement, this one.
        in_transaction = status == extensions.TRANSACTION_STATUS_INTRANS or not connection.autocommit
        if in_transaction:
            statements = [f"SAVEPOINT {_SAVEPOINT}", statements[0], f"RELEASE SAVEPOINT {_SAVEPOINT}", *statements[1:]]
        try:
            super().execute("; ".join(statements))
        except psycopg2.Error:
            if in_transaction:
                super().execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}")
            connection.refused.add(query)
            return None
        seen.pop(query, None)
        placeholders = ", ".join(["%s"] * count)
        found = connection.prepared[query] = (name, f"EXECUTE {name} ({placeholders})" if count else f"EXECUTE {name}")
        return found
