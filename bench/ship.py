"""Batch ship: shipments/s of an import file through shipments_import, beside raw SQL, in one run.

What is measured
----------------
import  N pending parcels (default 10,000; one order each, --lines lines of distinct SKUs) are
        shipped from a CSV file (shipment_no, carrier, tracking_no) in this process:
        ``fulfillment.imports.shipment_rows_read`` reads the file and
        ``fulfillment.imports.shipments_import(rows=..., actor=Actor.system(...))`` ships every row
        through ``fulfillment.services.shipment_ship``, one transaction per row, as
        ``manage.py import_shipments FILE`` does (less its progress bar). Printed: wall time,
        shipments/s, SQL statements per shipment (counted with a ``connection.execute_wrapper``:
        everything Django sends through a cursor, savepoints included; BEGIN/COMMIT are not), the
        share of the wall time inside ``cursor.execute``, and statements by kind.
reimport The same file imported again: every row must come back ``unchanged`` and nothing may
        change (the idempotence the issue asks for), timed the same way.
floor   The same rows in a clone of the same database (``CREATE DATABASE ... TEMPLATE``, made before
        the import), by psycopg2 in one transaction: COPY the same CSV file into a temporary table,
        then set-based statements for what shipping must write: the parcels (status, carrier,
        tracking number, shipped_at), their reservations consumed, the stock rows' on_hand and
        reserved, the orders (status, fulfillment status, carrier, tracking number, shipped_at),
        two timeline events per order (shipment shipped, status change) and the tracking
        subscription outbox row, plus the COMMIT. Everything else the import does (a transaction
        and row locks per parcel, the order-then-parcel lock order, format checks, partial-ship
        bookkeeping, the order's fulfillment progress, the queued subscription task, Django) is
        what the gap is made of.
ratio   import shipments/s divided by floor shipments/s, and its inverse ("x slower").

Setup (untimed)
---------------
The database named in ``--database-url`` (its name must contain "bench") and its clone
``<name>_floor`` are dropped and re-created; ``manage.py migrate`` runs; ``manage.py
create_storefront`` makes the storefront; a warehouse and ``--lines`` SKUs (10^9 units each) are
inserted. One order is then created, paid and allocated through the real services
(``order_create``, ``order_pay``, ``order_allocate``), and its rows (order, lines, active
reservations, events, pending parcel, parcel lines) are copied N - 1 times by INSERT ... SELECT, so
every parcel is exactly what allocation leaves, whatever columns the models grow. The stock rows'
``reserved`` is set to the sum of the active reservations. VACUUM ANALYZE, the clone, and a
CHECKPOINT before each timed part.

After each part, SQL checks: N parcels shipped with their numbers, N orders 已发货, no active
reservation left, every stock row's on_hand down by exactly the shipped units and reserved equal
to its active reservations (0), one shipment_shipped event per order, one subscription per
parcel; the reimport changed none of it. Both databases are dropped unless ``--keep-db``.
Celery messages (the tracking subscription task queued after each commit) go to ``--redis-url``
and are purged afterwards. PostgreSQL and this process share the machine's cores.

Run
---
    .venv/bin/python bench/ship.py                  # 10,000 parcels, 2 lines each
    .venv/bin/python bench/ship.py -n 1000 --keep-db

The exit status is 1 if a check fails.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import common
import psycopg2
from common import (
    STOREFRONT_CODE,
    admin,
    bench_env,
    close_django_connections,
    create_database,
    create_skus,
    create_storefront,
    django_setup,
    drop_database,
    load_average,
    machine_busy_s,
    migrate,
    positive_int,
    query_one,
    statement_kind,
    usable_cpus,
    with_database,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/oms_whbench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"
SETTINGS = "oms.settings.dev"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
EXTERNAL_PREFIX = "BENCH-SHIP-"
CARRIER = "shunfeng"
ACTOR_LABEL = "bench:import_shipments"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", "--shipments", type=positive_int, default=10_000, help="parcels to ship (default 10000)")
    parser.add_argument("--lines", type=positive_int, default=2, help="order lines per parcel (default 2)")
    parser.add_argument("--no-reimport", action="store_true", help="skip importing the file a second time")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"broker for the queued tasks (purged); default {DEFAULT_REDIS_URL}",
    )
    parser.add_argument("--keep-db", action="store_true", help="leave both databases in place afterwards")
    return parser.parse_args(argv)


def database_name(url: str) -> str:
    name = common.database_name(url)
    if len(name) > 57:
        raise SystemExit(f"database name {name!r} is too long for the '_floor' clone (57 characters at most)")
    if (urlsplit(url).hostname or "") not in LOCAL_HOSTS:
        raise SystemExit(f"refusing {urlsplit(url).hostname!r}: this benchmark only talks to 127.0.0.1")
    return name


def checkpoint(url: str) -> None:
    admin(url, "CHECKPOINT")


# --- setup: one real parcel, copied ----------------------------------------------------------


def template_parcel(*, lines: int) -> tuple[int, int]:
    """One order created, paid and allocated by the real services; returns (order id, shipment id)."""
    from fulfillment.services import order_allocate
    from orders.events import Actor
    from orders.models import Storefront
    from orders.services import OrderInput, order_create, order_pay

    payload = OrderInput(
        external_id=f"{EXTERNAL_PREFIX}{1:07d}",
        order_type="normal",
        payment_method="alipay",
        customer=common.CUSTOMER,
        shipping_address=common.ADDRESS,
        lines=[{"sku": code, "quantity": 1 + i % 3} for i, (code, *_rest) in enumerate(common.catalog(lines))],
    )
    order, _created = order_create(storefront=Storefront.objects.get(code=STOREFRONT_CODE), payload=payload)
    order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("bench"))
    (shipment,) = order_allocate(order=order)
    return order.pk, shipment.pk


def columns_of(cur, table: str) -> list[str]:
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND column_name <> 'id'"
        " ORDER BY ordinal_position",
        (table,),
    )
    return [row[0] for row in cur.fetchall()]


def copy_rows(cur, table: str, source: str, replace: dict[str, str], where: str, params: dict) -> int:
    """INSERT INTO table (every column but id) SELECT src.<column> or its replacement expression ..."""
    columns = columns_of(cur, table)
    exprs = [replace.get(column, f"src.{column}") for column in columns]
    statement = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(exprs)} FROM {source} WHERE {where}"
    cur.execute(statement, params)
    return cur.rowcount


def clone_parcels(dsn: str, *, order_id: int, shipment_id: int, count: int) -> None:
    """Copy the template order and its parcel count - 1 times, in one transaction."""
    clone = f"o.external_id LIKE '{EXTERNAL_PREFIX}%%' AND o.id <> %(order)s"
    number = f"substring(o.external_id from {len(EXTERNAL_PREFIX) + 1})"
    params = {"order": order_id, "shipment": shipment_id, "count": count}
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            copy_rows(
                cur,
                "orders_order",
                "orders_order src, generate_series(2, %(count)s) g",
                {
                    "order_no": "'B' || lpad(g::text, 9, '0') || src.order_no",
                    "external_id": f"'{EXTERNAL_PREFIX}' || lpad(g::text, 7, '0')",
                },
                "src.id = %(order)s",
                params,
            )
            copy_rows(
                cur,
                "orders_orderline",
                "orders_orderline src JOIN orders_order o ON " + clone,
                {"order_id": "o.id"},
                "src.order_id = %(order)s",
                params,
            )
            copy_rows(
                cur,
                "orders_orderevent",
                "orders_orderevent src JOIN orders_order o ON " + clone,
                {"order_id": "o.id"},
                "src.order_id = %(order)s",
                params,
            )
            copy_rows(
                cur,
                "inventory_reservation",
                "inventory_reservation src JOIN orders_orderline tl ON tl.id = src.order_line_id"
                " JOIN orders_orderline l ON l.sku_id = tl.sku_id JOIN orders_order o ON o.id = l.order_id AND "
                + clone,
                {"order_line_id": "l.id"},
                "tl.order_id = %(order)s AND src.status = 'active'",
                params,
            )
            copy_rows(
                cur,
                "fulfillment_shipment",
                "fulfillment_shipment src JOIN orders_order o ON " + clone,
                {"shipment_no": f"'PB' || {number}"},
                "src.id = %(shipment)s",
                params,
            )
            copy_rows(
                cur,
                "fulfillment_shipmentline",
                "fulfillment_shipmentline src JOIN orders_orderline tl ON tl.id = src.order_line_id"
                " JOIN orders_order o ON "
                + clone
                + " JOIN orders_orderline l ON l.order_id = o.id AND l.sku_id = tl.sku_id"
                f" JOIN fulfillment_shipment s ON s.shipment_no = 'PB' || {number}",
                {"shipment_id": "s.id", "order_id": "o.id", "order_line_id": "l.id"},
                "src.shipment_id = %(shipment)s",
                params,
            )
            cur.execute(
                "UPDATE inventory_stocklevel s SET reserved = coalesce((SELECT sum(r.quantity) FROM"
                " inventory_reservation r WHERE r.stock_level_id = s.id AND r.status = 'active'), 0)"
            )
    finally:
        conn.close()


def vacuum_analyze(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE)")
    finally:
        conn.close()


def write_file(dsn: str, path: Path) -> int:
    """The import file: every pending parcel with an SF number of its own."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT shipment_no FROM fulfillment_shipment WHERE status = 'pending' ORDER BY id")
            numbers = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["shipment_no", "carrier", "tracking_no"])
        for i, shipment_no in enumerate(numbers):
            writer.writerow([shipment_no, CARRIER, f"SF{7000000000 + i}"])
    return len(numbers)


# --- checks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    pending: int
    shipped: int
    orders_awaiting: int
    orders_shipped: int
    active_reservations: int
    consumed_units: int
    on_hand_dropped: int
    stock_rows_off: int
    shipped_events: int
    ship_events: int
    subscriptions: int


def database_state(dsn: str, stock_before: dict[int, int]) -> State:
    on_hand = dict((int(k), int(v)) for k, v in query_all(dsn, "SELECT id, on_hand FROM inventory_stocklevel"))
    row = query_one(
        dsn,
        """
        SELECT
            (SELECT count(*) FROM fulfillment_shipment WHERE status = 'pending'),
            (SELECT count(*) FROM fulfillment_shipment WHERE status = 'shipped' AND tracking_no <> ''
                AND shipped_at IS NOT NULL),
            (SELECT count(*) FROM orders_order WHERE status = 'awaiting_shipment'),
            (SELECT count(*) FROM orders_order WHERE status = 'shipped' AND fulfillment_status = 'shipped'),
            (SELECT count(*) FROM inventory_reservation WHERE status = 'active'),
            (SELECT coalesce(sum(quantity), 0) FROM inventory_reservation WHERE status = 'consumed'),
            0,
            (SELECT count(*) FROM inventory_stocklevel s WHERE s.reserved <> coalesce(
                (SELECT sum(r.quantity) FROM inventory_reservation r
                  WHERE r.stock_level_id = s.id AND r.status = 'active'), 0)),
            (SELECT count(*) FROM orders_orderevent WHERE type = 'shipment_shipped'),
            (SELECT count(*) FROM orders_orderevent WHERE to_status = 'shipped' AND from_status = 'awaiting_shipment'),
            (SELECT count(*) FROM fulfillment_trackingsubscription)
        """,
    )
    values = [int(v) for v in row]
    values[6] = sum(stock_before[k] - on_hand.get(k, 0) for k in stock_before)
    return State(*values)


def query_all(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    return common.query_all(dsn, statement, params)


def shipped_ok(state: State, n: int, units: int) -> bool:
    return (
        state.pending == 0
        and state.shipped == n
        and state.orders_awaiting == 0
        and state.orders_shipped == n
        and state.active_reservations == 0
        and state.consumed_units == units
        and state.on_hand_dropped == units
        and state.stock_rows_off == 0
        and state.shipped_events == n
        and state.ship_events == n
        and state.subscriptions == n
    )


def describe(state: State) -> str:
    return (
        f"parcels pending {state.pending} / shipped {state.shipped}; orders awaiting {state.orders_awaiting} /"
        f" shipped {state.orders_shipped}; active reservations {state.active_reservations}; consumed units"
        f" {state.consumed_units}; on_hand dropped {state.on_hand_dropped}; stock rows off {state.stock_rows_off};"
        f" shipment_shipped events {state.shipped_events}; ship events {state.ship_events}; subscriptions"
        f" {state.subscriptions}"
    )


# --- the import -------------------------------------------------------------------------


@dataclass
class StatementLog:
    count: int = 0
    seconds: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)
    seconds_by_kind: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def __call__(self, execute: Callable[..., Any], statement: str, params: Any, many: bool, context: Any) -> Any:
        began = time.perf_counter()
        try:
            return execute(statement, params, many, context)
        finally:
            took = time.perf_counter() - began
            kind = statement_kind(statement)
            self.count += 1
            self.seconds += took
            self.by_kind[kind] += 1
            self.seconds_by_kind[kind] += took


@dataclass(frozen=True)
class ImportRun:
    statuses: Counter[str]
    errors: list[str]
    elapsed_s: float
    read_s: float
    log: StatementLog
    cpu_client_s: float
    machine_busy_s: float | None


def run_import(path: Path) -> ImportRun:
    from django.db import connection

    from fulfillment.imports import shipment_rows_read, shipments_import
    from orders.events import Actor

    log = StatementLog()
    connection.ensure_connection()
    busy_before, cpu_before = machine_busy_s(), time.process_time()
    with connection.execute_wrapper(log):
        began = time.perf_counter()
        with path.open("rb") as handle:
            rows = shipment_rows_read(handle, name=path.name)
        read = time.perf_counter()
        results = shipments_import(rows=rows, actor=Actor.system(ACTOR_LABEL))
        ended = time.perf_counter()
    busy_after = machine_busy_s()
    busy = busy_after - busy_before if busy_before is not None and busy_after is not None else None
    return ImportRun(
        statuses=Counter(str(r.status) for r in results),
        errors=[f"row {r.row} {r.reference}: {r.message}" for r in results if r.status == "error"],
        elapsed_s=ended - began,
        read_s=read - began,
        log=log,
        cpu_client_s=time.process_time() - cpu_before,
        machine_busy_s=busy,
    )


# --- the floor ------------------------------------------------------------------------------

FLOOR_STATEMENTS = [
    "CREATE TEMP TABLE ship_import (shipment_no text PRIMARY KEY, carrier text, tracking_no text) ON COMMIT DROP",
    None,  # COPY ship_import FROM the file
    """UPDATE fulfillment_shipment s SET status = 'shipped', carrier = i.carrier, tracking_no = upper(i.tracking_no),
              shipped_at = now(), updated_at = now()
         FROM ship_import i WHERE s.shipment_no = i.shipment_no AND s.status IN ('pending', 'picking', 'packed')""",
    """CREATE TEMP TABLE ship_lines ON COMMIT DROP AS
       SELECT sl.order_id, sl.order_line_id, sl.quantity, s.id AS shipment_id, s.carrier, s.tracking_no, s.shipment_no
         FROM fulfillment_shipmentline sl JOIN fulfillment_shipment s ON s.id = sl.shipment_id
         JOIN ship_import i ON i.shipment_no = s.shipment_no""",
    """UPDATE inventory_reservation r SET status = 'consumed', updated_at = now()
         FROM ship_lines l WHERE r.order_line_id = l.order_line_id AND r.status = 'active'""",
    """UPDATE inventory_stocklevel s SET on_hand = s.on_hand - v.units, reserved = s.reserved - v.units,
              updated_at = now()
         FROM (SELECT r.stock_level_id, sum(r.quantity) AS units FROM inventory_reservation r
                 JOIN ship_lines l ON l.order_line_id = r.order_line_id
                WHERE r.status = 'consumed' GROUP BY r.stock_level_id) v
        WHERE s.id = v.stock_level_id""",
    """UPDATE orders_order o SET status = 'shipped', fulfillment_status = 'shipped', carrier = v.carrier,
              tracking_no = v.tracking_no, shipped_at = now(), updated_at = now()
         FROM (SELECT DISTINCT order_id, carrier, tracking_no FROM ship_lines) v
        WHERE o.id = v.order_id AND o.status = 'awaiting_shipment'""",
    f"""INSERT INTO orders_orderevent (order_id, type, from_status, to_status, actor_kind, actor_label, reason, data,
                                      created_at)
       SELECT order_id, 'shipment_shipped', '', '', 'system', '{ACTOR_LABEL}', '',
              jsonb_build_object('shipment_no', min(shipment_no), 'carrier', min(carrier),
                                 'tracking_no', min(tracking_no),
                                 'lines', jsonb_agg(jsonb_build_object('line', order_line_id, 'quantity', quantity))),
              now()
         FROM ship_lines GROUP BY order_id""",
    f"""INSERT INTO orders_orderevent (order_id, type, from_status, to_status, actor_kind, actor_label, reason, data,
                                      created_at)
       SELECT DISTINCT order_id, 'ship', 'awaiting_shipment', 'shipped', 'system', '{ACTOR_LABEL}', '',
              jsonb_build_object('carrier', carrier, 'tracking_no', tracking_no), now()
         FROM ship_lines""",
    """INSERT INTO fulfillment_trackingsubscription (shipment_id, carrier, tracking_no, status, attempts, last_error,
                                                   created_at)
       SELECT DISTINCT shipment_id, carrier, tracking_no, 'pending', 0, '', now() FROM ship_lines""",
]


def run_floor(dsn: str, path: Path) -> tuple[int, float]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            began = time.perf_counter()
            shipped = 0
            for statement in FLOOR_STATEMENTS:
                if statement is None:
                    with path.open(encoding="utf-8") as handle:
                        cur.copy_expert("COPY ship_import FROM STDIN WITH (FORMAT csv, HEADER true)", handle)
                    continue
                cur.execute(statement)
                if statement.lstrip().startswith("UPDATE fulfillment_shipment"):
                    shipped = cur.rowcount
            conn.commit()
            return shipped, time.perf_counter() - began
    finally:
        conn.close()


def purge_broker() -> int:
    from celery import current_app

    return current_app.control.purge()


# --- report ---------------------------------------------------------------------------------


def report_run(label: str, run: ImportRun, n: int, cpus: int) -> None:
    log = run.log
    rate = n / run.elapsed_s if run.elapsed_s > 0 else 0.0
    print(
        f"{label}: {dict(run.statuses)} in {run.elapsed_s:.2f} s = {rate:,.0f} shipments/s"
        f" ({run.elapsed_s / n * 1000:.2f} ms each; reading the file {run.read_s * 1000:.0f} ms);"
        f" {log.count} statements = {log.count / n:.1f} per shipment, {log.seconds:.2f} s"
        f" ({log.seconds / run.elapsed_s:.0%} of the wall time) inside cursor.execute"
    )
    busy = f"{run.machine_busy_s:.1f} of {run.elapsed_s * cpus:.1f} core-s" if run.machine_busy_s is not None else "n/a"
    print(f"        cpu: this process {run.cpu_client_s:.1f} s; machine busy {busy}")
    for kind, count in log.by_kind.most_common():
        print(f"        {count / n:5.2f}/shipment  {log.seconds_by_kind[kind] / n * 1000:6.3f} ms/shipment  {kind}")
    for error in run.errors[:5]:
        print(f"        error: {error}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.database_url
    name = database_name(url)
    floor_name = f"{name}_floor"
    floor_url = with_database(url, floor_name)
    n = args.shipments
    cpus = usable_cpus()
    env = bench_env(settings=SETTINGS, database_url=url, redis_url=args.redis_url, throttle=False)
    print(
        f"ship: {n} pending parcels x {args.lines} lines shipped from a CSV file by fulfillment.imports.shipments_import"
        f" vs raw SQL; {os.cpu_count()} CPUs ({cpus} usable), load average {load_average()}"
    )
    failed = True
    drop_database(url, floor_name)
    create_database(url, name)
    workdir = tempfile.TemporaryDirectory(prefix="bench-ship-")
    path = Path(workdir.name) / "shipments.csv"
    try:
        began = time.perf_counter()
        migrate(env)
        create_storefront(env, STOREFRONT_CODE)
        create_skus(url, args.lines)
        django_setup(env)
        order_id, shipment_id = template_parcel(lines=args.lines)
        close_django_connections()
        clone_parcels(url, order_id=order_id, shipment_id=shipment_id, count=n)
        vacuum_analyze(url)
        rows = write_file(url, path)
        units = int(query_one(url, "SELECT sum(quantity) FROM fulfillment_shipmentline")[0])
        stock_before = {int(k): int(v) for k, v in query_all(url, "SELECT id, on_hand FROM inventory_stocklevel")}
        create_database(url, floor_name, template=name)
        size = query_one(url, "SELECT pg_size_pretty(pg_database_size(current_database()))")[0]
        print(
            f"setup : {name} migrated, 1 parcel by the services, {n - 1} copies by INSERT ... SELECT, {rows} rows"
            f" in the file ({units} units), {size}, clone {floor_name}; {time.perf_counter() - began:.1f} s (untimed)"
        )
        if rows != n:
            print(f"check : expected {n} pending parcels, found {rows}")
            return 1

        checkpoint(url)
        first = run_import(path)
        close_django_connections()
        after_first = database_state(url, stock_before)
        first_ok = first.statuses == Counter({"ok": n}) and shipped_ok(after_first, n, units)
        print(f"check : after import: {describe(after_first)}; {'OK' if first_ok else 'MISMATCH'}")

        again_ok = True
        again = None
        if not args.no_reimport:
            checkpoint(url)
            again = run_import(path)
            close_django_connections()
            after_again = database_state(url, stock_before)
            again_ok = again.statuses == Counter({"unchanged": n}) and after_again == after_first
            print(
                f"check : after reimport: {'nothing changed, OK' if again_ok else 'CHANGED: ' + describe(after_again)}"
            )

        checkpoint(url)
        floor_rows, floor_s = run_floor(floor_url, path)
        after_floor = database_state(floor_url, stock_before)
        floor_ok = floor_rows == n and shipped_ok(after_floor, n, units)
        print(f"check : floor: {describe(after_floor)}; {'OK' if floor_ok else 'MISMATCH'}")

        print()
        print("import = fulfillment.imports.shipment_rows_read + shipments_import(rows=..., actor=Actor.system(...)),")
        print("         in this process (Django, psycopg2, DEBUG=false), one transaction per row")
        print(f"floor  = COPY of the same file + 8 set-based statements + COMMIT, psycopg2, on {floor_name}")
        report_run("import", first, n, cpus)
        if again is not None:
            report_run("reimport", again, n, cpus)
        floor_rate = n / floor_s if floor_s > 0 else 0.0
        rate = n / first.elapsed_s
        print(f"floor : {floor_rows} shipments in {floor_s:.3f} s = {floor_rate:,.0f} shipments/s")
        print(
            f"ratio : import / floor = {rate / floor_rate:.4f} ({floor_rate / rate:,.0f}x slower);"
            f" per shipment {first.elapsed_s / n * 1000:.2f} ms vs {floor_s / n * 1000:.3f} ms;"
            f" load average after {load_average()}"
        )
        purged = purge_broker()
        print(f"broker: purged {purged} queued messages from {args.redis_url}")
        failed = not (first_ok and again_ok and floor_ok)
        return 1 if failed else 0
    finally:
        close_django_connections()
        workdir.cleanup()
        if args.keep_db:
            print(f"kept databases {name} and {floor_name} (--keep-db)")
        else:
            drop_database(url, floor_name)
            drop_database(url, name)


if __name__ == "__main__":
    sys.exit(main())
