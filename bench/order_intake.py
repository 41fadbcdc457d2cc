"""Order intake: orders/s through the storefront API, beside the raw-SQL floor, in one run.

What is measured
----------------
HTTP   N orders (default 2,000) are POSTed to ``/api/v1/orders/`` on a real gunicorn server
       (sync workers, ``oms.wsgi:application``) by C client threads (default 8), each with its
       own ``common.HttpPost`` (a socket per request, as gunicorn's sync workers close every
       connection; see its docstring). Every order has a unique ``external_id`` and 1-3 lines. Printed:
       orders/s (201 answers / wall time of the run), p50/p99 latency of the 201 answers, and
       the count and first few bodies of any non-201 answer.

floor  The same N orders (same SKUs and quantities, order by order) written with raw SQL through
       psycopg2 by C threads, each with its own connection, one transaction per order:
       ``INSERT`` the order, its lines and the "created" event, then (in the order the service
       takes them, shared rows last) ``SELECT ... FOR UPDATE`` the SKUs' stock rows ordered by
       id, ``UPDATE`` their ``reserved``, ``INSERT`` one reservation per line, ``COMMIT``.
       These are the rows the API writes; the floor leaves out everything
       else the API does (API key and throttle, the idempotency and SKU reads, validation,
       building the answer, HTTP, JSON, Django), so it is the rate the API could approach.

ceiling
       The same request bodies, POSTed by the same client threads to the same number of
       gunicorn sync workers serving ``bench/empty_app.py`` instead of Django: it reads the body
       and answers ``201``. No endpoint served and loaded this way can be faster, so the
       ceiling's share of the floor bounds the endpoint's ratio, and its p99 at 32 clients is
       the lowest p99 the endpoint could have there. Printed with its load line and as ``bound``.

rounds HTTP, floor and ceiling take turns (``--rounds``, default 4): round r sends orders
       r/R..(r+1)/R of each kind, HTTP first, then the floor, then the ceiling. On a machine shared with other work the load
       changes within a minute; alternating makes both kinds see the same weather. Idle sync
       workers use no CPU while the floor runs.

load   For each kind, over its rounds: how busy the machine was, the CPU this benchmark used
       (client, gunicorn, the bench database's backends), the CPU other processes took (in
       cores, on average) and the 1-minute load average at each round's start. A ratio
       measured while others took a large share of the cores is a weaker figure; say so.

ratio  HTTP orders/s divided by floor orders/s, and its inverse ("x slower").

open   By default the load is a closed loop: every client posts its next order the moment it is
       answered, so the machine is saturated and each latency is about clients / throughput
       (Little's law: 32 clients at 200 orders/s wait 160 ms on average, however fast each
       request is alone). ``--rate R`` offers R orders/s in all instead, spread over the same
       clients; each order is due at its time, sent by a free client no earlier, and its latency
       counts from when it was due (so queueing behind a slow server is counted). The ratio is
       not meaningful then (both kinds run at the offered rate); the latencies are the figure.

Client threads, gunicorn, Redis and PostgreSQL all share this machine's cores; everything talks
to 127.0.0.1 only. The server runs ``oms.settings.dev`` with ``DEBUG=false`` (or
``--settings oms.settings.prod`` with ``SECURE_SSL_REDIRECT=false``), ``API_THROTTLE_RATE``
set high enough that throttling never answers 429, and gunicorn's sync workers, 2 per core
(4 here), which is also what docker-compose.yml runs (``--workers 4``).

Each run starts from scratch: it drops and re-creates the database named in ``--database-url``
(the name must contain "bench"), runs ``manage.py migrate``, creates a storefront and API key
with ``manage.py create_storefront``, a warehouse and SKUs with stock for every order of both
runs, starts gunicorn on a free port, warms it up, runs the rounds, stops gunicorn (always),
checks that both kinds wrote the same rows, prints the results and drops the database
(unless ``--keep-db``).

Run
---
    .venv/bin/python bench/order_intake.py                  # 2,000 orders, 8 clients
    .venv/bin/python bench/order_intake.py -c 32            # the latency target: p99 at 32 clients
    .venv/bin/python bench/order_intake.py -c 32 --rate 150 # 32 clients offering 150 orders/s (open load)
    .venv/bin/python bench/order_intake.py -n 200 -c 4 --workers 2 --lines 2 --keep-db

The exit status is 1 if either run had an error or the row check failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import secrets
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg2
from common import (
    ADDRESS,
    CUSTOMER,
    ORDER_COLUMNS,
    STOCK_PER_SKU,
    THROTTLE_RATE,
    WARMUP_PREFIX,
    Gunicorn,
    HttpPost,
    MachineLoad,
    RunResult,
    SkuRow,
    add_database_url,
    add_load_options,
    add_redis_url,
    add_rounds_option,
    bench_env,
    ceiling_lines,
    create_skus,
    create_storefront,
    database_name,
    empty_server,
    measured_round,
    merge_runs,
    migrate,
    positive_int,
    print_errors,
    query_one,
    round_slices,
    run_load,
    scratch_database,
    server_version,
    storefront_row,
    usable_cpus,
)
from psycopg2.extensions import connection as PgConnection
from psycopg2.extras import Json, execute_values

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/oms_bench"

HTTP_PREFIX = "BENCH-HTTP-"
FLOOR_PREFIX = "BENCH-SQL-"

ORDER_TYPE = "normal"
PAYMENT_METHOD = "alipay"
REMARK = "请尽快发货"

# The pricing settings the server reads (oms/settings/base.py); the floor prices the same way.
SHIPPING_FEE = Decimal(os.environ.get("OMS_SHIPPING_FEE", "10.00"))
FREE_SHIPPING_THRESHOLD = Decimal(os.environ.get("OMS_FREE_SHIPPING_THRESHOLD", "99.00"))
PAYMENT_TIMEOUT = timedelta(minutes=int(os.environ.get("OMS_PAYMENT_TIMEOUT_NORMAL_MINUTES", str(24 * 60))))
ZERO = Decimal("0.00")

OrderLines = tuple[tuple[int, int], ...]  # ((sku index, quantity), ...)


# --- options ------------------------------------------------------------------


def lines_range(text: str) -> tuple[int, int]:
    """'2' -> (2, 2); '1-3' -> (1, 3)."""
    low, _, high = text.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or LOW-HIGH, got {text!r}") from None
    if not 1 <= lo <= hi <= 100:
        raise argparse.ArgumentTypeError("lines per order must satisfy 1 <= LOW <= HIGH <= 100")
    return lo, hi


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", "--orders", type=positive_int, default=2000, help="orders per run (default 2000)")
    add_load_options(parser)
    parser.add_argument(
        "--lines", type=lines_range, default=(1, 3), help="lines per order, N or LOW-HIGH (default 1-3)"
    )
    parser.add_argument("--skus", type=positive_int, default=3, help="SKUs to draw lines from (default 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up orders (default 4 x workers)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the order lines (default 1)")
    add_rounds_option(parser)
    add_database_url(parser, DEFAULT_DATABASE_URL)
    add_redis_url(parser, "cache (throttle)")
    parser.add_argument(
        "--settings",
        choices=["oms.settings.dev", "oms.settings.prod"],
        default="oms.settings.dev",
        help="server settings module; always run with DEBUG=false (default oms.settings.dev)",
    )
    parser.add_argument("--keep-db", action="store_true", help="leave the database in place afterwards")
    args = parser.parse_args(argv)
    if args.skus < args.lines[1]:
        parser.error(f"--skus ({args.skus}) must be at least the largest lines per order ({args.lines[1]})")
    if args.warmup is None:
        args.warmup = 4 * args.workers
    return args


# --- server setup ----------------------------------------------------------------


def server_env(args: argparse.Namespace) -> dict[str, str]:
    env = bench_env(settings=args.settings, database_url=args.database_url, redis_url=args.redis_url)
    if args.settings == "oms.settings.prod":
        env.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
        env.update(SECURE_SSL_REDIRECT="false", ALLOWED_HOSTS="127.0.0.1,localhost")
    return env


# --- the orders ------------------------------------------------------------------


def make_plans(*, count: int, lines: tuple[int, int], skus: int, seed: int) -> list[OrderLines]:
    """Order i's lines: distinct SKUs, 1-3 units each. Shared by the HTTP run and the floor."""
    rng = random.Random(seed)
    plans = []
    for _ in range(count):
        chosen = rng.sample(range(skus), rng.randint(*lines))
        plans.append(tuple((sku, rng.randint(1, 3)) for sku in chosen))
    return plans


def request_body(external_id: str, plan: OrderLines, skus: Sequence[SkuRow]) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "order_type": ORDER_TYPE,
        "payment_method": PAYMENT_METHOD,
        "customer": CUSTOMER,
        "shipping_address": ADDRESS,
        "lines": [{"sku": skus[sku].code, "quantity": quantity} for sku, quantity in plan],
        "remark": REMARK,
    }


# --- HTTP client ------------------------------------------------------------------


class HttpClient:
    def __init__(self, *, url: str, api_key: str, bodies: Sequence[bytes]) -> None:
        self.bodies = bodies
        self.http = HttpPost(url, {"Authorization": f"Api-Key {api_key}", "Content-Type": "application/json"})

    def send(self, index: int) -> str | None:
        status, content = self.http.post(self.bodies[index])
        if status == 201:
            return None
        return f"HTTP {status}: {content[:500].decode(errors='replace')}"

    def close(self) -> None:
        pass


def http_bodies(prefix: str, plans: Sequence[OrderLines], skus: Sequence[SkuRow]) -> list[bytes]:
    """JSON bodies encoded up front, so the client spends its CPU on requests, not on json.dumps."""
    return [
        json.dumps(request_body(f"{prefix}{i:06d}", plan, skus), ensure_ascii=False).encode()
        for i, plan in enumerate(plans)
    ]


# --- the floor: the same rows with raw SQL ------------------------------------------

INSERT_ORDER = "INSERT INTO orders_order ({}) VALUES ({}) RETURNING id".format(
    ", ".join(ORDER_COLUMNS), ", ".join(f"%({column})s" for column in ORDER_COLUMNS)
)
LOCK_STOCK = (
    "SELECT s.id, s.sku_id, s.on_hand - s.reserved FROM inventory_stocklevel s"
    " JOIN inventory_warehouse w ON w.id = s.warehouse_id"
    " WHERE s.sku_id = ANY(%s) AND w.active ORDER BY s.id FOR UPDATE OF s"
)
RESERVE_STOCK = (
    "UPDATE inventory_stocklevel s SET reserved = s.reserved + v.quantity"
    " FROM unnest(%s::bigint[], %s::integer[]) AS v(id, quantity) WHERE s.id = v.id"
)
INSERT_LINES = (
    "INSERT INTO orders_orderline"
    " (order_id, sku_id, sku_code, name, spec, unit_price, quantity, line_total, discount)"
    " VALUES %s RETURNING id, sku_id"
)
INSERT_RESERVATIONS = (
    "INSERT INTO inventory_reservation (order_line_id, stock_level_id, quantity, status, created_at, updated_at)"
    " VALUES %s"
)
INSERT_EVENT = (
    "INSERT INTO orders_orderevent"
    " (order_id, type, from_status, to_status, actor_kind, actor_label, reason, data, created_at)"
    " VALUES (%s, 'created', '', 'pending_payment', 'storefront', %s, '', %s, %s)"
)


def fingerprint(external_id: str, lines: list[dict[str, Any]]) -> str:
    """Same recipe as orders.services.OrderInput.fingerprint."""
    body = {
        "external_id": external_id,
        "order_type": ORDER_TYPE,
        "payment_method": PAYMENT_METHOD,
        "customer": CUSTOMER,
        "shipping_address": ADDRESS,
        "lines": lines,
        "coupon_code": "",
        "remark": REMARK,
        "expected_total": None,
    }
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class FloorStockShort(Exception):
    """A floor order found too little stock (its transaction is rolled back)."""


class SqlClient:
    """One psycopg2 connection; each order is one transaction writing the API's rows."""

    def __init__(
        self,
        *,
        dsn: str,
        storefront: tuple[int, str],
        skus: Sequence[SkuRow],
        plans: Sequence[OrderLines],
    ) -> None:
        self.conn: PgConnection = psycopg2.connect(dsn)
        self.storefront_id, self.storefront_code = storefront
        self.skus = skus
        self.plans = plans

    def send(self, index: int) -> str | None:
        plan = self.plans[index]
        skus = [self.skus[sku] for sku, _ in plan]
        quantities = [quantity for _, quantity in plan]
        external_id = f"{FLOOR_PREFIX}{index:06d}"
        now = datetime.now(UTC)
        line_totals = [sku.price * quantity for sku, quantity in zip(skus, quantities, strict=True)]
        goods_total = sum(line_totals, ZERO)
        shipping_fee = ZERO if goods_total >= FREE_SHIPPING_THRESHOLD else SHIPPING_FEE
        payable_total = goods_total + shipping_fee
        breakdown = {
            "goods_total": str(goods_total),
            "discount_total": str(ZERO),
            "shipping_fee": str(shipping_fee),
            "payable_total": str(payable_total),
        }
        order = {
            "order_no": f"BENCHSQL{index:010d}",
            "storefront_id": self.storefront_id,
            "external_id": external_id,
            "request_fingerprint": fingerprint(
                external_id, [{"sku": sku.code, "quantity": q} for sku, q in zip(skus, quantities, strict=True)]
            ),
            "order_type": ORDER_TYPE,
            "payment_method": PAYMENT_METHOD,
            "status": "pending_payment",
            "customer_name": CUSTOMER["name"],
            "customer_mobile": CUSTOMER["mobile"],
            "customer_email": CUSTOMER["email"],
            "customer_member_id": CUSTOMER["member_id"],
            "receiver": ADDRESS["receiver"],
            "receiver_phone": ADDRESS["phone"],
            "province": ADDRESS["province"],
            "city": ADDRESS["city"],
            "district": ADDRESS["district"],
            "address_detail": ADDRESS["detail"],
            "postcode": ADDRESS["postcode"],
            "goods_total": goods_total,
            "shipping_fee": shipping_fee,
            "discount_total": ZERO,
            "payable_total": payable_total,
            "paid_total": ZERO,
            "refunded_total": ZERO,
            "payment_deadline": now + PAYMENT_TIMEOUT,
            "remark": REMARK,
            "review_flags": Json([]),
            "cancel_reason": "",
            "cancel_note": "",
            "carrier": "",
            "tracking_no": "",
            "created_at": now,
            "updated_at": now,
        }
        try:
            self._write(order, skus, quantities, line_totals, breakdown, now)
        except FloorStockShort as short:
            return f"insufficient stock for {short}"
        return None

    def _write(self, order, skus, quantities, line_totals, breakdown, now) -> None:
        """One transaction: the order, its lines and event, then (as order_create does) the stock
        rows locked last and their reservations, so each order holds them as briefly as the API."""
        with self.conn, self.conn.cursor() as cur:  # COMMIT on success, ROLLBACK on error
            cur.execute(INSERT_ORDER, order)
            (order_id,) = cur.fetchone()
            inserted = execute_values(
                cur,
                INSERT_LINES,
                [
                    (order_id, sku.id, sku.code, sku.name, sku.spec, sku.price, quantity, total, ZERO)
                    for sku, quantity, total in zip(skus, quantities, line_totals, strict=True)
                ],
                fetch=True,
            )
            line_by_sku = {sku_id: line_id for line_id, sku_id in inserted}
            cur.execute(INSERT_EVENT, (order_id, self.storefront_code, Json({**breakdown, "review_flags": []}), now))
            cur.execute(LOCK_STOCK, ([sku.id for sku in skus],))
            available: dict[int, list[tuple[int, int]]] = defaultdict(list)
            for level_id, sku_id, free in cur.fetchall():
                available[sku_id].append((level_id, free))
            takes: dict[int, list[tuple[int, int]]] = {}  # sku id -> [(stock level id, units)]
            for sku, wanted in zip(skus, quantities, strict=True):
                takes[sku.id] = []
                for level_id, free in available[sku.id]:
                    take = min(free, wanted)
                    if take > 0:
                        takes[sku.id].append((level_id, take))
                        wanted -= take
                if wanted:
                    raise FloorStockShort(sku.code)  # rolls the order back
            level_ids = [level_id for per_sku in takes.values() for level_id, _ in per_sku]
            units = [take for per_sku in takes.values() for _, take in per_sku]
            cur.execute(RESERVE_STOCK, (level_ids, units))
            execute_values(
                cur,
                INSERT_RESERVATIONS,
                [
                    (line_by_sku[sku_id], level_id, take, "active", now, now)
                    for sku_id, per_sku in takes.items()
                    for level_id, take in per_sku
                ],
            )

    def close(self) -> None:
        self.conn.close()


# --- checks and report --------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    orders: int
    lines: int
    reservations: int
    events: int
    units: int
    payable: Decimal

    def __str__(self) -> str:
        return (
            f"orders={self.orders} lines={self.lines} reservations={self.reservations}"
            f" events={self.events} units={self.units} payable={self.payable}"
        )


def rows_written(dsn: str, prefix: str) -> Written:
    row = query_one(
        dsn,
        """
        SELECT
            (SELECT count(*) FROM orders_order o WHERE o.external_id LIKE %(p)s),
            (SELECT count(*) FROM orders_orderline l
                JOIN orders_order o ON o.id = l.order_id WHERE o.external_id LIKE %(p)s),
            (SELECT count(*) FROM inventory_reservation r JOIN orders_orderline l ON l.id = r.order_line_id
                JOIN orders_order o ON o.id = l.order_id WHERE o.external_id LIKE %(p)s),
            (SELECT count(*) FROM orders_orderevent e
                JOIN orders_order o ON o.id = e.order_id WHERE o.external_id LIKE %(p)s),
            (SELECT coalesce(sum(r.quantity), 0) FROM inventory_reservation r
                JOIN orders_orderline l ON l.id = r.order_line_id
                JOIN orders_order o ON o.id = l.order_id WHERE o.external_id LIKE %(p)s),
            (SELECT coalesce(sum(o.payable_total), 0) FROM orders_order o WHERE o.external_id LIKE %(p)s)
        """,
        {"p": prefix + "%"},
    )
    return Written(*row)


def stock_consistent(dsn: str) -> tuple[int, int]:
    """(sum of stock_level.reserved, sum of active reservations): equal if no unit was lost."""
    reserved, held = query_one(
        dsn,
        "SELECT (SELECT coalesce(sum(reserved), 0) FROM inventory_stocklevel),"
        " (SELECT coalesce(sum(quantity), 0) FROM inventory_reservation WHERE status = 'active')",
    )
    return int(reserved), int(held)


def result_line(label: str, result: RunResult) -> str:
    return (
        f"{label:<6}: {result.rate:8.1f} orders/s   p50 {result.percentile_ms(50):7.1f} ms"
        f"   p99 {result.percentile_ms(99):7.1f} ms   ({result.ok} ok, {len(result.errors)} errors,"
        f" {result.elapsed_s:.2f} s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    dsn = args.database_url
    lo, hi = args.lines
    env = server_env(args)
    print(
        f"order intake: {args.orders} orders per run, {args.concurrency} concurrent clients,"
        f" {lo}-{hi} lines/order over {args.skus} SKUs, {os.cpu_count()} CPUs"
    )
    print(
        f"load  : open, {args.rate:g} orders/s offered to both kinds; latency from when each order was due"
        if args.rate
        else "load  : closed loop, every client posts again as soon as it is answered (latency ~ clients / rate)"
    )
    database_name(dsn)  # refuse early if the name does not look like a bench database

    with scratch_database(dsn, keep=args.keep_db):
        began = time.perf_counter()
        migrate(env)
        api_key = create_storefront(env)
        skus = create_skus(dsn, args.skus)
        storefront = storefront_row(dsn)
        print(
            f"setup : database {database_name(dsn)} (PostgreSQL {server_version(dsn)}) re-created and migrated,"
            f" storefront + API key, {args.skus} SKUs x {STOCK_PER_SKU} units, in {time.perf_counter() - began:.1f} s"
        )

        plans = make_plans(count=args.orders, lines=args.lines, skus=args.skus, seed=args.seed)
        warmup_plans = make_plans(count=args.warmup, lines=args.lines, skus=args.skus, seed=args.seed + 1)
        bodies = http_bodies(HTTP_PREFIX, plans, skus)
        warmup_bodies = http_bodies(WARMUP_PREFIX, warmup_plans, skus)

        http_rounds: list[RunResult] = []
        floor_rounds: list[RunResult] = []
        ceiling_rounds: list[RunResult] = []
        http_load, floor_load, ceiling_load = (MachineLoad(cpus=usable_cpus()) for _ in range(3))
        with (
            Gunicorn(env=env, workers=args.workers) as server,
            empty_server(workers=args.workers, status="201 Created", body="{}") as ceiling,
        ):
            print(
                f"server: gunicorn oms.wsgi:application, {args.workers} sync workers on {server.url},"
                f" DJANGO_SETTINGS_MODULE={args.settings} DEBUG=false"
                + (" SECURE_SSL_REDIRECT=false" if args.settings == "oms.settings.prod" else "")
                + f", API_THROTTLE_RATE={THROTTLE_RATE}, cache {args.redis_url}"
            )
            endpoint = f"{server.url}/api/v1/orders/"
            if args.warmup:
                warmup = run_load(
                    count=args.warmup,
                    concurrency=min(args.concurrency, args.warmup),
                    open_client=lambda: HttpClient(url=endpoint, api_key=api_key, bodies=warmup_bodies),
                )
                print(f"warmup: {warmup.ok} orders (untimed), {len(warmup.errors)} errors")
                print_errors("warm-up", warmup.errors)
            assert server.proc is not None
            # HTTP and floor take turns, so a change in what else runs on the machine hits both.
            # Between HTTP rounds the idle sync workers use no CPU: the floor has the machine.
            for start, count in round_slices(args.orders, args.rounds):
                each = {"count": count, "start": start, "concurrency": args.concurrency, "rate": args.rate}
                http_rounds.append(
                    measured_round(
                        http_load,
                        dsn=dsn,
                        gunicorn_pid=server.proc.pid,
                        open_client=lambda: HttpClient(url=endpoint, api_key=api_key, bodies=bodies),
                        **each,
                    )
                )
                floor_rounds.append(
                    measured_round(
                        floor_load,
                        dsn=dsn,
                        open_client=lambda: SqlClient(dsn=dsn, storefront=storefront, skus=skus, plans=plans),
                        **each,
                    )
                )
                assert ceiling.proc is not None
                ceiling_rounds.append(
                    measured_round(
                        ceiling_load,
                        dsn=dsn,
                        gunicorn_pid=ceiling.proc.pid,
                        open_client=lambda: HttpClient(
                            url=f"{ceiling.url}/api/v1/orders/", api_key=api_key, bodies=bodies
                        ),
                        **each,
                    )
                )
        http, floor, ceiling_run = merge_runs(http_rounds), merge_runs(floor_rounds), merge_runs(ceiling_rounds)

        print(
            f"HTTP  = POST /api/v1/orders/ through gunicorn, {args.concurrency} client threads (common.HttpPost: one socket per request)"
        )
        print(f"floor = same orders as raw SQL via psycopg2, one transaction each, {args.concurrency} connections")
        print(f"rounds: {len(http_rounds)}, HTTP, floor, then ceiling in each, {args.orders} orders per kind in all")
        print(result_line("HTTP", http))
        print_errors("HTTP", http.errors)
        print(f"load  : during HTTP : {http_load.describe()}")
        print(result_line("floor", floor))
        print_errors("floor", floor.errors)
        print(f"load  : during floor: {floor_load.describe()}")
        if args.rate:
            print(
                f"ratio : n/a under open load (both kinds ran at the offered {args.rate:g} orders/s);"
                f" p99 HTTP {http.percentile_ms(99):.1f} ms, floor {floor.percentile_ms(99):.1f} ms"
            )
        elif http.rate > 0 and floor.rate > 0:
            print(
                f"ratio : HTTP/floor = {http.rate / floor.rate:.3f} of the floor's orders/s"
                f"  ->  HTTP is {floor.rate / http.rate:.1f}x slower than the raw-SQL floor"
            )
        else:
            print("ratio : n/a (a run placed no orders)")
        for line in ceiling_lines(ceiling_run, floor=floor, http=http, load=ceiling_load, unit="orders"):
            print(line)

        http_rows, floor_rows = rows_written(dsn, HTTP_PREFIX), rows_written(dsn, FLOOR_PREFIX)
        reserved, held = stock_consistent(dsn)
        same = http_rows == floor_rows and reserved == held
        print(f"check : HTTP  wrote {http_rows}")
        print(f"check : floor wrote {floor_rows}")
        print(
            f"check : stock reserved {reserved} = active reservations {held};"
            f" {'same rows in both runs' if same else 'MISMATCH'}"
        )
        failed = bool(http.errors or floor.errors or ceiling_run.errors) or not same
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
