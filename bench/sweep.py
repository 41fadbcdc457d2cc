"""Timeout close sweep: orders/s of order_close_expired, beside one bare UPDATE, in one run.

What is measured
----------------
sweep  N expired, unpaid orders (default 100,000; 3 lines each) are closed in this process by
       ``workflows.expiry.order_close_expired(now=..., batch_size=B, max_batches=ceil(N/B) + 1)``
       (``django.setup()`` on the bench database), called again until a call runs out of work.
       Printed: wall time, orders/s, SQL statements per 1,000 orders, the share of the wall time
       spent inside ``cursor.execute`` (round trip + server work), statements by kind with their
       time per batch in the first vs the last tenth of the batches (does a batch get slower as the
       sweep goes on?), and how long each batch holds the stock rows locked (from the locking read
       in the stock release to the batch's COMMIT: order_create for those SKUs waits that long).
       Statements are counted with a ``connection.execute_wrapper``: everything Django sends
       through a cursor, savepoints included; BEGIN/COMMIT (psycopg2 connection methods) are not.
       Their kinds (verb + first table, GROUP BY / FOR UPDATE marks) are read off the SQL, so a
       statement the sweep gains later is listed under its own kind without a change here.

floor  The same rows in a clone of the same database (``CREATE DATABASE ... TEMPLATE``, made
       before the sweep), closed by one raw statement through psycopg2::

           UPDATE orders_order SET status = 'cancelled', cancel_reason = 'timeout',
                  cancelled_at = now(), updated_at = now()
            WHERE status = 'pending_payment' AND payment_deadline < now()

       plus its COMMIT: the one write the sweep cannot avoid. Everything else the sweep does
       (claiming rows with FOR UPDATE SKIP LOCKED in batches, releasing the stock rows and
       reservations, writing a cancel event per order, giving back coupon uses, queueing the
       closed-order notice, refreshing customer risk flags, Django) is what the gap is made of.

load   For the sweep and for the floor: how busy the machine was, the CPU this benchmark used
       (this process and the bench database's backend), the CPU other processes took (in
       cores, on average) and the 1-minute load average at its start. The two parts run one
       after the other, not in rounds (the floor is one statement), so compare their load lines.

ratio  sweep orders/s divided by floor orders/s, and its inverse ("x slower").

Setup (untimed)
---------------
The database named in ``--database-url`` (the name must contain "bench") and its clone
``<name>_floor`` are dropped and re-created; ``manage.py migrate`` runs; ``manage.py
create_storefront`` makes the storefront. A warehouse and ``--skus`` SKUs (10^9 units each) are
inserted, then the orders are written with COPY, row for row as ``order_create`` leaves them:
``orders_order`` in ``pending_payment`` (priced by ``orders.pricing.quote``, fingerprinted by
``OrderInput.fingerprint``, payment deadline = created + the normal order timeout, all deadlines
in the 23 hours before the run), 3 ``orders_orderline`` rows over distinct SKUs, one active
``inventory_reservation`` per line, ``inventory_stocklevel.reserved`` = the sum of the active
reservations, one "created" ``orders_orderevent``. No payment attempt exists, so no gateway is
called. Customers: each order's mobile is drawn uniformly from ``--mobiles`` numbers (default
N/2), so customers have 1, 2, 3... unpaid orders (about Poisson(N/M)); every one with at least
OMS_RISK_TIMEOUT_CLOSES of them gets a risk flag from the sweep. Then VACUUM ANALYZE (as
autovacuum would have done in the day since), the clone, and a CHECKPOINT before each timed part.

After the sweep, SQL checks: all N orders cancelled with reason timeout, no active reservation
left for them, every stock row's ``reserved`` equal to the sum of its active reservations (0
here), N cancel events, one active risk flag per customer with enough closes (and their timeout
closes summed on the flags), one closed-notice reminder per order and active ``after_closed`` rule
(the built-in one comes from reminders migration 0002); and that the floor updated N rows. Both databases are dropped unless ``--keep-db``. PostgreSQL and this
process share the machine's cores; everything talks to 127.0.0.1 only.

Run
---
    .venv/bin/python bench/sweep.py                     # 100,000 orders, batches of 500
    .venv/bin/python bench/sweep.py -n 2000 --batch-size 200 --mobiles 500 --keep-db

The exit status is 1 if a check fails.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import common
import psycopg2
from common import (
    STOREFRONT_CODE,
    MachineLoad,
    SkuRow,
    admin,
    bench_env,
    close_django_connections,
    create_database,
    create_skus,
    create_storefront,
    django_setup,
    drop_database,
    migrate,
    positive_int,
    query_one,
    statement_kind,
    storefront_row,
    usable_cpus,
    with_database,
)
from psycopg2 import sql

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/oms_bench_sweep"
SETTINGS = "oms.settings.dev"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
LINES_PER_ORDER = 3
COPY_CHUNK = 10_000  # orders per COPY round (memory bound, not speed)
DEADLINE_SPREAD = timedelta(hours=23)  # deadlines fall in [start - 23 h - 1 min, start - 1 min]
EXTERNAL_PREFIX = "BENCH-SWEEP-"

# (code, name, spec, price): the shared three, then five more; more SKUs than these get generated names.
CATALOG: list[tuple[str, str, str, str]] = [
    *common.CATALOG,
    ("BENCH-SOCKS-5", "棉袜五双装", "均码", "19.90"),
    ("BENCH-BOTTLE-500", "保温杯", "500ml 银色", "89.00"),
    ("BENCH-NOTE-A5", "笔记本", "A5 横线", "12.80"),
    ("BENCH-UMBRELLA", "折叠伞", "三折 蓝色", "49.50"),
    ("BENCH-BAG-20L", "双肩包", "20L 灰色", "199.00"),
]
# (province, city, district, postcode)
REGIONS: list[tuple[str, str, str, str]] = [
    ("浙江省", "杭州市", "西湖区", "310000"),
    ("上海市", "上海市", "浦东新区", "200120"),
    ("广东省", "深圳市", "南山区", "518000"),
    ("北京市", "北京市", "朝阳区", "100020"),
    ("四川省", "成都市", "武侯区", "610041"),
    ("江苏省", "南京市", "鼓楼区", "210008"),
]
STREETS = ["文三路", "世纪大道", "科技园路", "建国路", "人民南路", "中山北路"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"

FLOOR_UPDATE = (
    "UPDATE orders_order SET status = 'cancelled', cancel_reason = 'timeout', cancelled_at = now(), updated_at = now()"
    " WHERE status = 'pending_payment' AND payment_deadline < now()"
)


# Explicit ids, so lines, reservations and events can point at them without a round trip.
ORDER_COLUMNS = ("id", *common.ORDER_COLUMNS)
LINE_COLUMNS = (
    "id",
    "order_id",
    "sku_id",
    "sku_code",
    "name",
    "spec",
    "unit_price",
    "quantity",
    "line_total",
    "discount",
)
RESERVATION_COLUMNS = ("id", "order_line_id", "stock_level_id", "quantity", "status", "created_at", "updated_at")
EVENT_COLUMNS = (
    "id",
    "order_id",
    "type",
    "from_status",
    "to_status",
    "actor_kind",
    "actor_label",
    "reason",
    "data",
    "created_at",
)  # actor_user_id NULL: a storefront is not a staff user
COPIED_TABLES = ("orders_order", "orders_orderline", "inventory_reservation", "orders_orderevent")


# --- options ------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "-n", "--orders", type=positive_int, default=100_000, help="expired orders to close (default 100000)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=500, help="order_close_expired batch_size (default 500)"
    )
    parser.add_argument(
        "--mobiles", type=positive_int, default=None, help="customer mobile numbers to draw from (default N/2)"
    )
    parser.add_argument(
        "--skus", type=positive_int, default=len(CATALOG), help=f"SKUs to draw lines from (default {len(CATALOG)})"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed for customers and lines (default 1)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
    parser.add_argument("--keep-db", action="store_true", help="leave both databases in place afterwards")
    args = parser.parse_args(argv)
    if args.skus < LINES_PER_ORDER:
        parser.error(f"--skus must be at least {LINES_PER_ORDER} (lines per order, distinct SKUs)")
    if args.mobiles is None:
        args.mobiles = max(args.orders // 2, 1)
    if args.mobiles >= 10**8:
        parser.error("--mobiles must be below 100000000")
    return args


# --- databases ----------------------------------------------------------------


def database_name(url: str) -> str:
    """common.database_name, and room for the '_floor' clone's name, and a local server only."""
    name = common.database_name(url)
    if len(name) > 57:
        raise SystemExit(f"database name {name!r} is too long for the '_floor' clone (57 characters at most)")
    if (urlsplit(url).hostname or "") not in LOCAL_HOSTS:
        raise SystemExit(f"refusing {urlsplit(url).hostname!r}: this benchmark only talks to 127.0.0.1")
    return name


def checkpoint(url: str) -> None:
    """Flush what the setup wrote, so no checkpoint of it lands inside a timed part."""
    admin(url, "CHECKPOINT")


def server_info(dsn: str) -> str:
    version, buffers, sync, autovacuum, page_cost = query_one(
        dsn,
        "SELECT current_setting('server_version'), current_setting('shared_buffers'),"
        " current_setting('synchronous_commit'), current_setting('autovacuum'), current_setting('random_page_cost')",
    )
    return (
        f"PostgreSQL {version.split()[0]}, shared_buffers {buffers}, synchronous_commit {sync},"
        f" autovacuum {autovacuum}, random_page_cost {page_cost}"
    )


# --- the data -------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Who ordered what, order by order (index i is order id i + 1)."""

    mobiles: list[int]  # customer number per order
    methods: list[str]  # payment method per order
    lines: list[tuple[tuple[int, int], ...]]  # ((sku index, quantity), ...) per order

    def orders_per_mobile(self) -> Counter[int]:
        return Counter(self.mobiles)


def make_plan(*, count: int, mobiles: int, skus: int, seed: int) -> Plan:
    rng = random.Random(seed)
    return Plan(
        mobiles=[rng.randrange(mobiles) for _ in range(count)],
        methods=["alipay" if rng.random() < 0.7 else "wechatpay" for _ in range(count)],
        lines=[
            tuple((sku, rng.randint(1, 3)) for sku in rng.sample(range(skus), LINES_PER_ORDER)) for _ in range(count)
        ],
    )


def mobile_of(k: int) -> str:
    return f"139{k:08d}"


def customer_of(k: int) -> dict[str, str]:
    name = f"{SURNAMES[k % len(SURNAMES)]}{'先生' if k % 2 else '女士'}"
    return {"name": name, "mobile": mobile_of(k), "email": f"u{k:08d}@example.com", "member_id": f"M{k:08d}"}


def address_of(k: int, customer: dict[str, str]) -> dict[str, str]:
    province, city, district, postcode = REGIONS[k % len(REGIONS)]
    return {
        "receiver": customer["name"],
        "phone": customer["mobile"],
        "province": province,
        "city": city,
        "district": district,
        "detail": f"{STREETS[k % len(STREETS)]}{k % 997 + 1}号",
        "postcode": postcode,
    }


def copy_text(values: Iterable[Any]) -> str:
    """One row of COPY's text format. Our values never hold tab, newline or backslash (asserted)."""
    text = "\t".join("\\N" if v is None else str(v) for v in values)
    assert "\n" not in text and "\\" not in text.replace("\\N", ""), text
    return text + "\n"


def copy_rows(cur, table: str, columns: Sequence[str], rows: list[str]) -> None:
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO("".join(rows)))


def load_orders(
    dsn: str, *, plan: Plan, skus: Sequence[SkuRow], storefront: tuple[int, str], first_deadline: datetime
) -> None:
    """Write the orders with COPY, as order_create would have left them; one transaction."""
    from django.conf import settings
    from django.utils import timezone

    from orders.pricing import PricedLine, quote
    from orders.services import OrderInput, payment_deadline_for

    storefront_id, storefront_code = storefront
    count = len(plan.mobiles)
    step = DEADLINE_SPREAD / max(count - 1, 1)
    timeout = payment_deadline_for(order_type="normal", created=first_deadline) - first_deadline
    reserved: dict[int, int] = defaultdict(int)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            for start in range(0, count, COPY_CHUNK):
                orders, lines, reservations, events = [], [], [], []
                for i in range(start, min(start + COPY_CHUNK, count)):
                    order_id = i + 1
                    k = plan.mobiles[i]
                    customer = customer_of(k)
                    address = address_of(k, customer)
                    chosen = [(skus[s], q) for s, q in plan.lines[i]]
                    deadline = first_deadline + step * i
                    created = deadline - timeout
                    priced = quote(
                        lines=[PricedLine(unit_price=sku.price, quantity=q) for sku, q in chosen],
                        coupon=None,
                        now=created,
                        shipping_fee=settings.OMS_SHIPPING_FEE,
                        free_shipping_threshold=settings.OMS_FREE_SHIPPING_THRESHOLD,
                    )
                    review_flags = (
                        ["large_amount"] if priced.payable_total >= settings.OMS_LARGE_ORDER_THRESHOLD else []
                    )
                    external_id = f"{EXTERNAL_PREFIX}{order_id:07d}"
                    fingerprint = OrderInput(
                        external_id=external_id,
                        order_type="normal",
                        payment_method=plan.methods[i],
                        customer=customer,
                        shipping_address=address,
                        lines=[{"sku": sku.code, "quantity": q} for sku, q in chosen],
                    ).fingerprint()
                    orders.append(
                        copy_text(
                            (
                                order_id,
                                f"{timezone.localtime(created):%Y%m%d}{order_id:010d}",
                                storefront_id,
                                external_id,
                                fingerprint,
                                "normal",
                                plan.methods[i],
                                "pending_payment",
                                customer["name"],
                                customer["mobile"],
                                customer["email"],
                                customer["member_id"],
                                address["receiver"],
                                address["phone"],
                                address["province"],
                                address["city"],
                                address["district"],
                                address["detail"],
                                address["postcode"],
                                priced.goods_total,
                                priced.shipping_fee,
                                priced.discount_total,
                                priced.payable_total,
                                "0.00",
                                "0.00",
                                deadline.isoformat(),
                                "",
                                json.dumps(review_flags),
                                "",
                                "",
                                "",
                                "",
                                created.isoformat(),
                                created.isoformat(),
                            )
                        )
                    )
                    for j, ((sku, quantity), share) in enumerate(zip(chosen, priced.line_discounts, strict=True)):
                        line_id = LINES_PER_ORDER * i + j + 1
                        lines.append(
                            copy_text(
                                (
                                    line_id,
                                    order_id,
                                    sku.id,
                                    sku.code,
                                    sku.name,
                                    sku.spec,
                                    sku.price,
                                    quantity,
                                    sku.price * quantity,
                                    share,
                                )
                            )
                        )
                        reservations.append(
                            copy_text(
                                (
                                    line_id,
                                    line_id,
                                    sku.level_id,
                                    quantity,
                                    "active",
                                    created.isoformat(),
                                    created.isoformat(),
                                )
                            )
                        )
                        reserved[sku.level_id] += quantity
                    data = {**priced.breakdown(), "review_flags": review_flags}
                    events.append(
                        copy_text(
                            (
                                order_id,
                                order_id,
                                "created",
                                "",
                                "pending_payment",
                                "storefront",
                                storefront_code,
                                "",
                                json.dumps(data, ensure_ascii=False),
                                created.isoformat(),
                            )
                        )
                    )
                copy_rows(cur, "orders_order", ORDER_COLUMNS, orders)
                copy_rows(cur, "orders_orderline", LINE_COLUMNS, lines)
                copy_rows(cur, "inventory_reservation", RESERVATION_COLUMNS, reservations)
                copy_rows(cur, "orders_orderevent", EVENT_COLUMNS, events)
            cur.execute(
                "UPDATE inventory_stocklevel s SET reserved = v.units, updated_at = now()"
                " FROM unnest(%s::bigint[], %s::integer[]) AS v(id, units) WHERE s.id = v.id",
                (list(reserved), list(reserved.values())),
            )
            for table in COPIED_TABLES:  # explicit ids were copied: move the identity sequences past them
                cur.execute(
                    sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM {}))").format(
                        sql.Identifier(table)
                    ),
                    (table,),
                )
    finally:
        conn.close()


def vacuum_analyze(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for table in (*COPIED_TABLES, "inventory_stocklevel"):
                cur.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    finally:
        conn.close()


@dataclass(frozen=True)
class State:
    pending_expired: int
    cancelled_timeout: int
    lines: int
    active_reservations: int
    active_units: int
    reserved: int
    stock_rows_off: int  # stock rows whose reserved != sum of their active reservations
    created_events: int
    cancel_events: int
    cancel_events_orders: int
    active_flags: int
    flag_closes: int
    closed_notices: int  # reminders_reminder rows for the closed-order notice (reminders_notify_closed)


def database_state(dsn: str) -> State:
    row = query_one(
        dsn,
        """
        SELECT
            (SELECT count(*) FROM orders_order WHERE status = 'pending_payment' AND payment_deadline < now()),
            (SELECT count(*) FROM orders_order WHERE status = 'cancelled' AND cancel_reason = 'timeout'
                AND cancelled_at IS NOT NULL),
            (SELECT count(*) FROM orders_orderline),
            (SELECT count(*) FROM inventory_reservation r JOIN orders_orderline l ON l.id = r.order_line_id
                WHERE r.status = 'active'),
            (SELECT coalesce(sum(quantity), 0) FROM inventory_reservation WHERE status = 'active'),
            (SELECT coalesce(sum(reserved), 0) FROM inventory_stocklevel),
            (SELECT count(*) FROM inventory_stocklevel s WHERE s.reserved <> coalesce(
                (SELECT sum(r.quantity) FROM inventory_reservation r
                  WHERE r.stock_level_id = s.id AND r.status = 'active'), 0)),
            (SELECT count(*) FROM orders_orderevent WHERE type = 'created'),
            (SELECT count(*) FROM orders_orderevent WHERE type = 'cancel' AND from_status = 'pending_payment'
                AND to_status = 'cancelled' AND actor_label = 'close_expired_orders'),
            (SELECT count(DISTINCT order_id) FROM orders_orderevent WHERE type = 'cancel'),
            (SELECT count(*) FROM orders_customerriskflag WHERE active),
            (SELECT coalesce(sum(timeout_closes), 0) FROM orders_customerriskflag WHERE active),
            (SELECT count(*) FROM reminders_reminder WHERE purpose = 'closed_notice')
        """,
    )
    return State(*(int(v) for v in row))


def closed_notice_rules(dsn: str, order_type: str = "normal") -> int:
    """Active closed-notice rules (built in by reminders migration 0002) that apply to `order_type`."""
    row = query_one(
        dsn,
        "SELECT count(*) FROM reminders_reminderrule WHERE active AND kind = 'after_closed'"
        " AND (order_types = '[]'::jsonb OR order_types @> jsonb_build_array(%s::text))",
        (order_type,),
    )
    return int(row[0])


# --- the sweep --------------------------------------------------------------------


# A batch starts where the sweep claims its rows (FOR UPDATE SKIP LOCKED): once a SELECT before
# the UPDATE that closed them, now the UPDATE itself.
CLAIMS = {"SELECT orders_order ... FOR UPDATE SKIP LOCKED", "UPDATE orders_order ... FOR UPDATE SKIP LOCKED"}
STOCK_LOCK = "SELECT inventory_stocklevel ... FOR UPDATE"  # stock_release_for_orders locks the stock rows


@dataclass
class Batch:
    began: float
    statements_before: int
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    stock_locked_at: float | None = None
    ended: float = 0.0
    statements: int = 0

    @property
    def duration(self) -> float:
        return self.ended - self.began

    @property
    def stock_locked_s(self) -> float:
        """From locking the stock rows to the end of the batch (its COMMIT is just before the next claim)."""
        return self.ended - self.stock_locked_at if self.stock_locked_at is not None else 0.0


@dataclass
class StatementLog:
    """A connection.execute_wrapper: counts and times every statement, batch by batch."""

    count: int = 0
    seconds: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)
    seconds_by_kind: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    batches: list[Batch] = field(default_factory=list)

    def __call__(self, execute: Callable[..., Any], statement: str, params: Any, many: bool, context: Any) -> Any:
        kind = statement_kind(statement)
        began = time.perf_counter()
        if kind in CLAIMS:
            self.batches.append(Batch(began=began, statements_before=self.count))
        elif kind == STOCK_LOCK and self.batches:
            self.batches[-1].stock_locked_at = began
        try:
            return execute(statement, params, many, context)
        finally:
            took = time.perf_counter() - began
            self.count += 1
            self.seconds += took
            self.by_kind[kind] += 1
            self.seconds_by_kind[kind] += took
            if self.batches:
                self.batches[-1].seconds[kind] += took

    def finish(self, ended: float) -> list[Batch]:
        """Close the batch spans; returns the batches that closed orders (an empty claim is 1 statement)."""
        marks = [(b.began, b.statements_before) for b in self.batches[1:]] + [(ended, self.count)]
        for batch, (until, count) in zip(self.batches, marks, strict=True):
            batch.ended, batch.statements = until, count - batch.statements_before
        return [b for b in self.batches if b.statements > 1]


@dataclass(frozen=True)
class SweepResult:
    closed: int
    checked_with_gateway: int
    batches: int
    calls: int
    elapsed_s: float
    log: StatementLog
    profile: list[Batch]

    @property
    def rate(self) -> float:
        return self.closed / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_sweep(*, now: datetime, batch_size: int, max_batches: int) -> SweepResult:
    from django.db import connection

    from workflows.expiry import order_close_expired

    log = StatementLog()
    connection.ensure_connection()
    closed = checked = batches = calls = 0
    with connection.execute_wrapper(log):
        began = time.perf_counter()
        while True:
            report = order_close_expired(now=now, batch_size=batch_size, max_batches=max_batches)
            calls += 1
            closed += report.closed
            checked += report.checked_with_gateway
            batches += report.batches
            if report.closed < batch_size * report.batches:  # a batch came up short: no work left
                break
        ended = time.perf_counter()
    return SweepResult(closed, checked, batches, calls, ended - began, log, log.finish(ended))


def run_floor(dsn: str, finished: Callable[[], None]) -> tuple[int, float]:
    """The raw UPDATE + COMMIT; `finished` runs before the connection closes (its backend's CPU is read then)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            began = time.perf_counter()
            cur.execute(FLOOR_UPDATE)
            rows = cur.rowcount
            conn.commit()
            took = time.perf_counter() - began
            finished()
            return rows, took
    finally:
        conn.close()


# --- report -------------------------------------------------------------------------


def histogram(per_mobile: Counter[int], threshold: int) -> str:
    sizes = Counter(per_mobile.values())
    parts = [f"{n} order{'s' if n > 1 else ''}: {sizes[n]}" for n in range(1, threshold)]
    parts.append(f">= {threshold}: {sum(v for n, v in sizes.items() if n >= threshold)}")
    parts.append(f"max {max(sizes)}")
    return ", ".join(parts)


def tenths(profile: list[Batch]) -> tuple[list[Batch], list[Batch]]:
    size = max(len(profile) // 10, 1)
    return profile[:size], profile[-size:]


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.database_url
    name = database_name(url)  # refuse early if the name does not look like a bench database
    floor_name = f"{name}_floor"
    floor_url = with_database(url, floor_name)
    n, batch = args.orders, args.batch_size
    max_batches = math.ceil(n / batch) + 1
    env = bench_env(settings=SETTINGS, database_url=url, redis_url="", throttle=False)  # no cache, no broker
    print(
        f"sweep: order_close_expired over {n} expired pending orders x {LINES_PER_ORDER} lines"
        f" ({args.skus} SKUs, {args.mobiles} customer mobiles), batch_size {batch}, max_batches {max_batches},"
        f" {os.cpu_count()} CPUs"
    )

    failed = True
    drop_database(url, floor_name)
    create_database(url, name)
    try:
        began = time.perf_counter()
        migrate(env)
        create_storefront(env, STOREFRONT_CODE)
        django_setup(env)  # settings and pure helpers only; no connection until the sweep
        from django.conf import settings
        from django.utils import timezone

        threshold, window = settings.OMS_RISK_TIMEOUT_CLOSES, settings.OMS_RISK_WINDOW_DAYS
        skus = create_skus(url, args.skus, CATALOG)
        storefront = storefront_row(url, STOREFRONT_CODE)
        migrate_s = time.perf_counter() - began

        began = time.perf_counter()
        plan = make_plan(count=n, mobiles=args.mobiles, skus=args.skus, seed=args.seed)
        first_deadline = timezone.now() - timedelta(minutes=1) - DEADLINE_SPREAD
        load_orders(url, plan=plan, skus=skus, storefront=storefront, first_deadline=first_deadline)
        load_s = time.perf_counter() - began
        began = time.perf_counter()
        vacuum_analyze(url)
        vacuum_s = time.perf_counter() - began
        before = database_state(url)
        began = time.perf_counter()
        create_database(url, floor_name, template=name)
        clone_s = time.perf_counter() - began
        size = query_one(url, "SELECT pg_size_pretty(pg_database_size(current_database()))")[0]
        per_mobile = plan.orders_per_mobile()
        flagged = {k: c for k, c in per_mobile.items() if c >= threshold}

        print(
            f"setup : database {name} ({server_info(url)}) re-created, migrated, storefront + {args.skus} SKUs"
            f" in {migrate_s:.1f} s; {n} orders + {LINES_PER_ORDER * n} lines + {LINES_PER_ORDER * n}"
            f" reservations + {n} events by COPY in {load_s:.1f} s; VACUUM ANALYZE {vacuum_s:.1f} s;"
            f" {size}; clone {floor_name} (CREATE DATABASE ... TEMPLATE) in {clone_s:.1f} s (all untimed)"
        )
        print(
            f"        deadlines {first_deadline:%Y-%m-%d %H:%M} .. +{DEADLINE_SPREAD} (all past), payment methods"
            f" alipay {plan.methods.count('alipay')} / wechatpay {plan.methods.count('wechatpay')}, no payment"
            f" attempts, no coupons"
        )
        print(
            f"        customers: {len(per_mobile)} distinct mobiles of {args.mobiles} drawn"
            f" ({n / len(per_mobile):.2f} orders each on average); orders per mobile: {histogram(per_mobile, threshold)}"
        )
        print(
            f"        risk rule OMS_RISK_TIMEOUT_CLOSES={threshold} in OMS_RISK_WINDOW_DAYS={window}: the sweep should"
            f" flag {len(flagged)} customers ({len(flagged) / len(per_mobile):.1%}), holding"
            f" {sum(flagged.values())} of the {n} orders"
        )
        setup_ok = (
            before.pending_expired == n
            and before.lines == LINES_PER_ORDER * n
            and before.active_reservations == LINES_PER_ORDER * n
            and before.reserved == before.active_units
            and before.stock_rows_off == 0
            and before.created_events == n
        )
        print(
            f"check : before: pending past deadline {before.pending_expired}, lines {before.lines}, active"
            f" reservations {before.active_reservations} ({before.active_units} units), stock reserved"
            f" {before.reserved}, stock rows off {before.stock_rows_off}, created events {before.created_events};"
            f" {'OK' if setup_ok else 'MISMATCH'}"
        )
        if not setup_ok:
            return 1

        checkpoint(url)
        now = timezone.now()
        sweep_load, floor_load = MachineLoad(cpus=usable_cpus()), MachineLoad(cpus=usable_cpus())
        with sweep_load.part(dsn=url):
            sweep = run_sweep(now=now, batch_size=batch, max_batches=max_batches)
        close_django_connections()
        checkpoint(url)
        with floor_load.part(dsn=floor_url) as stop:
            floor_rows, floor_s = run_floor(floor_url, stop)
        floor_rate = floor_rows / floor_s if floor_s > 0 else 0.0

        log = sweep.log
        per_k = 1000 / max(sweep.closed, 1)
        print(
            f"sweep = workflows.expiry.order_close_expired(now=..., batch_size={batch}, max_batches={max_batches})"
            f" in this process (Django, psycopg2, DEBUG=false), until it runs out of work"
        )
        print("floor = one raw UPDATE ... WHERE status='pending_payment' AND payment_deadline < now() + COMMIT,")
        print(f"        psycopg2, on the clone {floor_name}")
        print(
            f"sweep : {sweep.rate:9.1f} orders/s   ({sweep.closed} closed in {sweep.elapsed_s:.2f} s;"
            f" {sweep.calls} call(s), {sweep.batches} batches, {sweep.checked_with_gateway} checked with a gateway)"
        )
        print(
            f"        {log.count} SQL statements = {log.count * per_k:.1f} per 1,000 orders;"
            f" {log.seconds:.2f} s inside cursor.execute ({log.seconds / sweep.elapsed_s:.0%} of the wall time),"
            f" {sweep.elapsed_s - log.seconds:.2f} s in Python around it"
        )
        first, last = tenths(sweep.profile)
        print(
            f"        {'statements':>10}   {'kind':<52} {'per 1k':>8} {'total s':>8}"
            f"   ms/batch: first tenth -> last tenth of the batches"
        )
        for kind, count in sorted(log.by_kind.items(), key=lambda item: -log.seconds_by_kind[item[0]]):
            print(
                f"        {count:10d} x {kind:<52} {count * per_k:8.1f} {log.seconds_by_kind[kind]:8.2f}"
                f"   {mean(b.seconds.get(kind, 0.0) for b in first) * 1000:8.2f} ->"
                f" {mean(b.seconds.get(kind, 0.0) for b in last) * 1000:8.2f}"
            )
        if sweep.profile:
            for label, part in (("first", first), ("last ", last)):
                print(
                    f"batch : {label} tenth ({len(part)} batches): {mean(b.duration for b in part) * 1000:7.1f} ms,"
                    f" {mean(b.statements for b in part):6.1f} statements per batch"
                )
            locked = sum(b.stock_locked_s for b in sweep.profile)
            print(
                f"locks : the stock rows of the released SKUs (all {len(skus)} here) are held FOR UPDATE from the"
                f" release to the batch's COMMIT: {mean(b.stock_locked_s for b in sweep.profile) * 1000:.1f} ms per"
                f" batch, {locked:.1f} s in all = {locked / sweep.elapsed_s:.0%} of the sweep (order_create for"
                f" those SKUs waits meanwhile)"
            )
        print(f"load  : during the sweep: {sweep_load.describe()}")
        print(
            f"floor : {floor_rate:9.1f} orders/s   ({floor_rows} rows updated in {floor_s:.2f} s, 1 statement + COMMIT)"
        )
        print(f"load  : during the floor: {floor_load.describe()}")
        if sweep.rate > 0 and floor_rate > 0:
            print(
                f"ratio : sweep/floor = {sweep.rate / floor_rate:.4f} of the floor's orders/s"
                f"  ->  sweep is {floor_rate / sweep.rate:.1f}x slower than the bare UPDATE"
            )
        else:
            print("ratio : n/a (a run closed no orders)")
        print(
            "beyond the floor, each batch: claims and closes its rows in one UPDATE (a sub-SELECT ... FOR UPDATE"
            " SKIP LOCKED, excluding orders with open or paid attempts by NOT EXISTS, RETURNING customer and coupon),"
            " gives back coupon uses, INSERTs one cancel event per order, queues the closed-order notice (reads the"
            " after_closed rules, INSERTs one reminder per order and rule), refreshes the risk flags of the batch's"
            " customers set-based (a count query, a read of the existing flags, one upsert, one UPDATE of counts),"
            " and releases stock last (reservations marked released by one UPDATE ... RETURNING, then the stock"
            " rows locked and updated)"
        )

        after = database_state(url)
        notice_rules = closed_notice_rules(url)
        flag_closes = sum(flagged.values())
        checks = {
            "orders cancelled with reason timeout": (after.cancelled_timeout, n),
            "orders still pending past deadline": (after.pending_expired, 0),
            "sweep reported closed": (sweep.closed, n),
            "active reservations left": (after.active_reservations, 0),
            "stock rows whose reserved != sum of their active reservations": (after.stock_rows_off, 0),
            "sum of stock reserved": (after.reserved, 0),
            "cancel events (close_expired_orders)": (after.cancel_events, n),
            "orders with a cancel event": (after.cancel_events_orders, n),
            "active risk flags": (after.active_flags, len(flagged)),
            "timeout closes on the flags": (after.flag_closes, flag_closes),
            f"closed-notice reminders ({notice_rules} active after_closed rule(s) x orders)": (
                after.closed_notices,
                notice_rules * n,
            ),
            "floor rows updated": (floor_rows, n),
        }
        bad = [label for label, (got, want) in checks.items() if got != want]
        for label, (got, want) in checks.items():
            print(f"check : {label} = {got} (want {want}){'' if got == want else '  <-- MISMATCH'}")
        print(f"check : {'OK' if not bad else 'MISMATCH: ' + ', '.join(bad)}")
        failed = bool(bad)
    finally:
        close_django_connections()
        if args.keep_db:
            print(f"kept databases {name} and {floor_name} (--keep-db)")
        else:
            drop_database(url, floor_name)
            drop_database(url, name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
