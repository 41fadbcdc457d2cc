"""The order list in the admin at a million orders, beside the same page's SQL in the same run.

    .venv/bin/python bench/admin_changelist.py [-n 1000000] [--repeat 5]

Loads N orders straight into a scratch PostgreSQL database (one INSERT ... SELECT over
generate_series: statuses, customers and a year of order times from a fixed seed), runs
VACUUM ANALYZE, then times three admin pages through Django's test client in this process,
as a logged-in superuser, as a browser gets them (session, middleware, templates):

- the order list (page 1, newest first);
- a search by a customer's whole mobile number;
- a status filter (已发货);
- the console's queues: 待人工审核 (one order in 49 carries a review flag) and 挂起 (one in
  997 is held).

The floor for each is the page's own row query in raw SQL (the same WHERE, ORDER BY and
LIMIT 100, through psycopg2): what the database must do whatever the framework. Each page
also reports its query count and whether any query counted the whole table. It prints the
figures, the floors and the ratios of one run, and the machine's load. No test asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence

import psycopg2
from common import (
    add_database_url,
    bench_env,
    create_storefront,
    database_name,
    django_setup,
    load_average,
    migrate,
    positive_int,
    query_one,
    scratch_database,
)

SETTINGS = "oms.settings.dev"
PAGES = {
    "list": ("", ""),
    "search by mobile": ("?q={mobile}", "WHERE o.customer_mobile = %(mobile)s OR o.receiver_phone = %(mobile)s"),
    "status filter": ("?status__exact=shipped", "WHERE o.status = 'shipped'"),
    "review queue": (
        "?review=waiting",
        "WHERE o.status IN ('pending_payment', 'paid') AND NOT (o.review_flags = '[]'::jsonb) "
        "AND (o.status = 'paid' OR o.review_flags::text LIKE '%%\"manual\"%%')",
    ),
    "held filter": ("?held=yes", "WHERE o.held_at IS NOT NULL AND o.status IN ('paid', 'awaiting_shipment')"),
}
TARGET_MS = 300.0
STATUSES = ["pending_payment", "paid", "awaiting_shipment", "shipped", "completed", "cancelled"]
CUSTOMERS = 200_000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--orders", type=positive_int, default=1_000_000, help="orders to load (default 1e6)")
    parser.add_argument("--repeat", type=positive_int, default=5, help="timed requests per page (default 5)")
    parser.add_argument("--keep-db", action="store_true", help="leave the database in place afterwards")
    parser.add_argument(
        "--target-ms",
        type=float,
        default=TARGET_MS,
        help=f"a page slower than this is MISSED (default {TARGET_MS:.0f}; CI's smoke run sets it out of reach)",
    )
    add_database_url(parser, "postgres://postgres@127.0.0.1:5432/oms_bench_admin")
    return parser.parse_args(argv)


LOAD_ORDERS = """
INSERT INTO orders_order (
    order_no, external_id, request_fingerprint, order_type, payment_method, status,
    customer_name, customer_mobile, customer_email, customer_member_id, receiver, receiver_phone,
    province, city, district, address_detail, postcode, goods_total, shipping_fee, discount_total,
    payable_total, paid_total, refunded_total, payment_deadline, remark, review_flags, cancel_reason,
    cancel_note, carrier, tracking_no, created_at, updated_at, storefront_id, held_at, hold_reason,
    fulfillment_status, aftersale_open
)
SELECT
    to_char(t.at, 'YYYYMMDD') || lpad(g::text, 10, '0'), 'ADMIN-' || g, '', 'normal', 'alipay',
    (%(statuses)s::text[])[1 + (g %% 6)],
    '顾客' || (g %% %(customers)s), '138' || lpad((g %% %(customers)s)::text, 8, '0'), '', '',
    '顾客' || (g %% %(customers)s), '138' || lpad((g %% %(customers)s)::text, 8, '0'),
    '浙江省', '杭州市', '西湖区', '文三路' || g || '号', '',
    210.00, 0.00, 0.00, 210.00, 0.00, 0.00, t.at + interval '1 day', '',
    CASE WHEN g %% 49 = 0 THEN '["remark"]'::jsonb ELSE '[]'::jsonb END, '', '', '', '',
    t.at, t.at, %(storefront)s, CASE WHEN g %% 997 = 0 THEN t.at END,
    CASE WHEN g %% 997 = 0 THEN '顾客考虑中' ELSE '' END, 'unfulfilled', false
FROM generate_series(1, %(n)s) AS g,
     LATERAL (SELECT now() - (random() * interval '365 days') - g * interval '0 second' AS at) AS t
"""


def load_orders(dsn: str, *, n: int, storefront_id: int) -> None:
    """N orders in one statement; a customer (mobile) has N / 200,000 orders."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT setseed(0.42)")
            params = {"statuses": STATUSES, "customers": CUSTOMERS, "storefront": storefront_id, "n": n}
            cur.execute(LOAD_ORDERS, params)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE) orders_order")
    finally:
        conn.close()


def time_sql(dsn: str, where: str, params: dict[str, str], repeat: int) -> list[float]:
    statement = (
        f"SELECT o.*, s.* FROM orders_order o JOIN orders_storefront s ON s.id = o.storefront_id {where} "
        "ORDER BY o.created_at DESC, o.id DESC LIMIT 100"
    )
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)  # warm
            cur.fetchall()
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                cur.execute(statement, params)
                cur.fetchall()
                times.append((time.perf_counter() - began) * 1000)
        return times
    finally:
        conn.close()


def full_table_counts(statements: list[str]) -> list[str]:
    """COUNT queries over orders_order that are not capped by a LIMIT subquery."""
    return [q for q in statements if "COUNT(" in q.upper() and "orders_order" in q and "LIMIT" not in q.upper()]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.database_url
    database_name(url)
    env = bench_env(settings=SETTINGS, database_url=url, redis_url="", throttle=False)
    print(f"admin_changelist: {args.orders} orders, {args.repeat} timed requests per page, {os.cpu_count()} CPUs")
    with scratch_database(url, keep=args.keep_db):
        began = time.perf_counter()
        migrate(env)
        create_storefront(env, "bench")
        storefront_id = int(query_one(url, "SELECT id FROM orders_storefront WHERE code = 'bench'")[0])
        load_orders(url, n=args.orders, storefront_id=storefront_id)
        size = query_one(url, "SELECT pg_size_pretty(pg_total_relation_size('orders_order'))")[0]
        print(
            f"setup : migrated and loaded {args.orders} orders ({size} with indexes) in "
            f"{time.perf_counter() - began:.1f} s (untimed)"
        )
        mobile = query_one(  # an order from the middle of the table (any run of -n small enough)
            url, "SELECT customer_mobile FROM orders_order ORDER BY id LIMIT 1 OFFSET %s", [min(4242, args.orders // 2)]
        )[0]

        django_setup(env)
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        user = get_user_model().objects.create_superuser("bench-admin", "b@example.com", "x" * 16)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        ok = True
        print(f"load  : {load_average()} (1-minute load average before timing)")
        for label, (query, where) in PAGES.items():
            path = "/admin/orders/order/" + query.format(mobile=mobile)
            response = client.get(path)  # warm: templates, caches, the plan
            assert response.status_code == 200, (label, response.status_code)
            statements: list[str] = []

            def record(execute, sql, params, many, context, statements=statements):
                statements.append(sql)
                return execute(sql, params, many, context)

            with connection.execute_wrapper(record):
                client.get(path)
            counts = full_table_counts(statements)
            times = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                client.get(path)
                times.append((time.perf_counter() - began) * 1000)
            floor = time_sql(url, where, {"mobile": mobile}, args.repeat)
            page_ms, floor_ms = statistics.median(times), statistics.median(floor)
            verdict = "OK" if page_ms < args.target_ms and not counts else "MISSED"
            ok &= verdict == "OK"
            print(
                f"{label:17}: median {page_ms:7.1f} ms (best {min(times):6.1f}) over {args.repeat} requests, "
                f"{len(statements)} queries, full-table COUNT(*): {len(counts)}; "
                f"floor (its row query in raw SQL) median {floor_ms:6.2f} ms; "
                f"ratio page/floor {page_ms / max(floor_ms, 0.001):.0f}x; target < {args.target_ms:.0f} ms: {verdict}"
            )
            for statement in counts:
                print(f"        full count: {statement[:160]}")
        print(f"load  : {load_average()} (1-minute load average after timing)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
