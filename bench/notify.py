"""Alipay notifies: applied notifies/s through gunicorn, beside the same work in raw SQL, in one run.

What is measured
----------------
HTTP   N orders (default 2,000), each with one Alipay payment attempt, each paid by one valid
       RSA2-signed ``TRADE_SUCCESS`` notify POSTed to ``/payments/notify/alipay/`` on a real
       gunicorn server (sync workers, ``oms.wsgi:application``) by C client threads (default 8),
       each with its own ``common.HttpPost`` (a socket per request, as gunicorn's sync workers
       close every connection; see its docstring). A notify counts only if it is answered HTTP 200
       with the bare body ``success``. Printed: applied notifies/s (such answers / wall time of
       the HTTP rounds), p50/p99 latency, gunicorn's CPU per notify, and the first few failures.

floor  The same work with nothing around it: N other orders of the same shape, their notifies
       signed the same way, sent by C threads with one psycopg2 connection each. Per notify:
       parse the form body, build the signing string the way Alipay signs (every non-empty
       field but ``sign`` and ``sign_type``, sorted, ``k=v`` joined by ``&``), verify
       SHA256withRSA (PKCS#1 v1.5) with ``cryptography``, then in one transaction write the
       rows an applied notify leaves: the payment ``succeeded`` (only if it is open and of that
       amount), the order paid and approved, the inbox row with outcome ``applied``, and the
       ``pay`` and ``approve`` events. What the endpoint does beyond that (Django, committing
       the inbox row before applying it, locking order and payment before deciding, checking
       merchant and app ids, reading rows into models) is what the gap is made of. The old
       floor, bare verification on one thread, is still printed as an aside: it is not the
       same work, so no ratio is taken to it.

ceiling
       The same notify bodies, POSTed by the same client threads to the same number of gunicorn
       sync workers serving ``bench/empty_app.py`` instead of Django: it reads the body and
       answers ``success``. No endpoint served and loaded this way can be faster, so the
       ceiling's share of the floor bounds the endpoint's ratio on this machine (the clients,
       gunicorn and PostgreSQL share its cores). Printed with its load line and as ``bound``.

rounds HTTP, floor and ceiling take turns (``--rounds``, default 4), in that order in each
       round, so all three see the same machine; each kind's load line says how much of the cores other processes
       took meanwhile and the 1-minute load average at each round's start.

ratio  HTTP applied notifies/s divided by floor notifies/s, and its inverse ("x slower").

Setup (untimed)
---------------
The database named in ``--database-url`` (the name must contain "bench") is dropped and
re-created, ``manage.py migrate`` runs, ``manage.py create_storefront`` makes the storefront.
Then, in this process (``django.setup()`` on the bench database): a warehouse and SKUs, the orders
(warm-up, HTTP and floor sets) through ``orders.services.order_create``, and one ``Payment`` per order with what
``payments.services.payment_start`` writes (``out_trade_no`` = ``<order_no>P01``, amount = payable
total, channel alipay, expiring at the payment deadline, plus its ``payment_started`` event), in bulk.

"Alipay"'s keys are generated in a temporary directory by the test suite's independent signer
(``tests.payments.gateway_doubles.FakeGateways``); gunicorn gets its ``ALIPAY_*`` settings, so our
adapter verifies against that key exactly as it would against Alipay's. Every notify is signed
before the clock starts. Gunicorn runs ``oms.settings.dev`` with ``DEBUG=false``, ``REDIS_URL`` for
cache and broker, ``API_THROTTLE_RATE`` high and ``OMS_SITE_URL`` pointing at itself. A few
warm-up orders (default 4 x workers) are paid untimed first. After the rounds gunicorn is stopped
(always), bare verification is timed, and SQL checks that every order of both sets is
``awaiting_shipment`` with its payment succeeded, exactly one ``applied`` notification and its
pay and approve events. The database is dropped unless ``--keep-db``.

Client threads, gunicorn, Redis and PostgreSQL all share this machine's cores; everything talks
to 127.0.0.1 only.

Run
---
    .venv/bin/python bench/notify.py                    # 2,000 notifies, 8 clients
    .venv/bin/python bench/notify.py -n 200 -c 4 --workers 2 --keep-db

The exit status is 1 on any error or a failed check.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import psycopg2
from common import (
    ADDRESS,
    CATALOG,
    CUSTOMER,
    STOCK_PER_SKU,
    STOREFRONT_CODE,
    THROTTLE_RATE,
    WARMUP_PREFIX,
    Gunicorn,
    HttpPost,
    MachineLoad,
    RunResult,
    add_database_url,
    add_load_options,
    add_redis_url,
    add_rounds_option,
    bench_env,
    ceiling_lines,
    close_django_connections,
    cpu_snapshot,
    create_storefront,
    database_name,
    django_setup,
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
    usable_cpus,
)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from psycopg2.extensions import connection as PgConnection
from psycopg2.extras import Json

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/oms_bench_notify"
SETTINGS = "oms.settings.dev"
NOTIFY_PATH = "/payments/notify/alipay/"
FLOOR_MIN_S = 1.0
SETUP_BATCH = 100  # orders created per transaction during setup

TIMED_PREFIX = "BENCH-NOTIFY-"
FLOOR_PREFIX = "BENCH-FLOOR-"
SHANGHAI = ZoneInfo("Asia/Shanghai")


# --- options ------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "-n", "--notifies", type=positive_int, default=2000, help="orders, one notify each (default 2000)"
    )
    add_load_options(parser)
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up notifies (default 4 x workers)")
    add_database_url(parser, DEFAULT_DATABASE_URL)
    add_redis_url(parser, "cache and broker")
    add_rounds_option(parser)
    parser.add_argument("--keep-db", action="store_true", help="leave the database in place afterwards")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 4 * args.workers
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


# --- setup in this process, through the services ---------------------------------------


@dataclass(frozen=True)
class Attempt:
    order_no: str
    out_trade_no: str
    amount: Decimal


def create_catalog() -> list[str]:
    """One warehouse and the CATALOG SKUs with STOCK_PER_SKU units each; returns the SKU codes."""
    from inventory.models import Sku, StockLevel, Warehouse

    warehouse = Warehouse.objects.create(code="BENCH", name="压测仓", active=True)
    codes = []
    for code, name, spec, price in CATALOG:
        sku = Sku.objects.create(code=code, name=name, spec=spec, price=Decimal(price), active=True)
        StockLevel.objects.create(sku=sku, warehouse=warehouse, on_hand=STOCK_PER_SKU, reserved=0)
        codes.append(code)
    return codes


def order_lines(index: int, codes: Sequence[str]) -> list[dict[str, Any]]:
    """1-3 distinct SKUs, 1-3 units each, fixed by the order's index (so amounts vary)."""
    count = 1 + index % len(codes)
    return [{"sku": codes[(index + k) % len(codes)], "quantity": 1 + (index // 3 + k) % 3} for k in range(count)]


def create_orders_and_attempts(*, prefix: str, count: int, storefront_code: str, codes: Sequence[str]) -> list[Attempt]:
    """`count` orders via order_create, then one Alipay attempt each, written as payment_start would."""
    from django.db import transaction

    from orders.models import OrderEvent, Storefront
    from orders.services import Actor, OrderInput, order_create
    from payments.models import Channel, Payment

    storefront = Storefront.objects.get(code=storefront_code)
    actor = Actor.storefront(storefront)
    orders = []
    for start in range(0, count, SETUP_BATCH):
        with transaction.atomic():  # one commit per batch; each order_create is its own savepoint
            for index in range(start, min(start + SETUP_BATCH, count)):
                payload = OrderInput(
                    external_id=f"{prefix}{index:06d}",
                    order_type="normal",
                    payment_method="alipay",
                    customer=CUSTOMER,
                    shipping_address=ADDRESS,
                    lines=order_lines(index, codes),
                    remark="请尽快发货",
                )
                order, created = order_create(storefront=storefront, payload=payload)
                if not created:
                    raise RuntimeError(f"order {payload.external_id} already existed")
                orders.append(order)
    with transaction.atomic():
        payments = Payment.objects.bulk_create(
            [
                Payment(
                    order=order,
                    channel=Channel.ALIPAY,
                    out_trade_no=f"{order.order_no}P01",
                    amount=order.payable_total,
                    expires_at=order.payment_deadline,
                )
                for order in orders
            ],
            batch_size=1000,
        )
        # payment_start's timeline entry, as order_event_record writes it.
        OrderEvent.objects.bulk_create(
            [
                OrderEvent(
                    order=order,
                    type=OrderEvent.Type.PAYMENT_STARTED,
                    actor_kind=actor.kind,
                    actor_label=actor.label,
                    actor_user=actor.user,
                    data={
                        "channel": payment.channel,
                        "out_trade_no": payment.out_trade_no,
                        "amount": str(payment.amount),
                    },
                )
                for order, payment in zip(orders, payments, strict=True)
            ],
            batch_size=1000,
        )
    return [Attempt(o.order_no, p.out_trade_no, p.amount) for o, p in zip(orders, payments, strict=True)]


def sign_notifies(gateways: Any, attempts: Sequence[Attempt]) -> list[bytes]:
    """One TRADE_SUCCESS notify per attempt, signed with "Alipay"'s private key, paid just now."""
    now = datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    return [
        gateways.alipay_notify(
            out_trade_no=attempt.out_trade_no,
            total_amount=f"{attempt.amount:.2f}",
            notify_time=now,
            gmt_create=now,
            gmt_payment=now,
        )
        for attempt in attempts
    ]


# --- load ----------------------------------------------------------------------------


class NotifyClient:
    """POSTs pre-signed notify bodies, as Alipay does (form-encoded); wants HTTP 200 `success`."""

    def __init__(self, *, url: str, bodies: Sequence[bytes]) -> None:
        self.bodies = bodies
        self.http = HttpPost(url, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    def send(self, index: int) -> str | None:
        status, content = self.http.post(self.bodies[index])
        if status == 200 and content == b"success":
            return None
        return f"notify {index}: HTTP {status}: {content[:300]!r}"

    def close(self) -> None:
        pass


# --- the floors: bare RSA2 verification, and verification + the same rows in raw SQL ----------


def verify_notify(public_key: rsa.RSAPublicKey, body: bytes) -> dict[str, str]:
    """Alipay's notify check, bare: form fields -> signing string -> SHA256withRSA verify.

    Returns the fields; raises cryptography.exceptions.InvalidSignature if the signature does not match.
    """
    fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    message = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in ("sign", "sign_type") and v != "")
    public_key.verify(base64.b64decode(fields["sign"]), message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return fields


@dataclass(frozen=True)
class FloorResult:
    verified: int
    passes: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.verified / self.elapsed_s


def run_verify_floor(public_key_pem: bytes, bodies: Sequence[bytes]) -> FloorResult:
    """Verify all `bodies`, single-threaded, in passes until FLOOR_MIN_S has gone by."""
    public_key = serialization.load_pem_public_key(public_key_pem)
    assert isinstance(public_key, rsa.RSAPublicKey)
    verify_notify(public_key, bodies[0])  # untimed: first-call costs
    passes = 0
    began = time.perf_counter()
    while True:
        for body in bodies:
            verify_notify(public_key, body)
        passes += 1
        elapsed = time.perf_counter() - began
        if elapsed >= FLOOR_MIN_S:
            return FloorResult(verified=passes * len(bodies), passes=passes, elapsed_s=elapsed)


# The rows one applied notify leaves, as the endpoint writes them: the payment succeeded, the
# order paid and auto-approved, the inbox row with its outcome, the "pay" and "approve" events.
FLOOR_PAYMENT = (
    "UPDATE payments_payment SET status = 'succeeded', gateway_trade_no = %(trade_no)s, paid_at = %(paid_at)s,"
    " updated_at = now() WHERE out_trade_no = %(out_trade_no)s AND channel = 'alipay' AND amount = %(amount)s"
    " AND status = 'created' RETURNING id, order_id"
)
FLOOR_ORDER = (
    "UPDATE orders_order SET status = 'awaiting_shipment', paid_total = paid_total + %(amount)s,"
    " paid_at = %(paid_at)s, approved_at = now(), updated_at = now()"
    " WHERE id = %(order_id)s AND status = 'pending_payment' AND payable_total = %(amount)s"
)
FLOOR_INBOX = (
    "INSERT INTO payments_paymentnotification (channel, dedupe_key, kind, raw_body, headers, verified,"
    " verify_error, outcome, outcome_note, out_trade_no, payment_id, order_id, received_at, processed_at)"
    " VALUES ('alipay', %(notify_id)s, 'payment', %(raw)s, '{}', true, '', 'applied', '', %(out_trade_no)s,"
    " %(payment_id)s, %(order_id)s, now(), now())"
)
FLOOR_EVENTS = (
    "INSERT INTO orders_orderevent (order_id, type, from_status, to_status, actor_kind, actor_label, reason,"
    " data, created_at) VALUES"
    " (%(order_id)s, 'pay', 'pending_payment', 'paid', 'gateway', 'alipay', '', %(pay_data)s, now()),"
    " (%(order_id)s, 'approve', 'paid', 'awaiting_shipment', 'system', 'auto_approve', '', '{}', now())"
)


class SqlNotifyClient:
    """The honest floor: verify the notify, then write its rows with raw SQL in one transaction.

    One psycopg2 connection per client thread, like one gunicorn worker's. It leaves out what
    the endpoint does beyond that: Django, the inbox committed before it is applied, the row
    locks taken before deciding, the checks of merchant and app ids, reading the rows into models.
    """

    def __init__(self, *, dsn: str, public_key_pem: bytes, bodies: Sequence[bytes]) -> None:
        self.conn: PgConnection = psycopg2.connect(dsn)
        public_key = serialization.load_pem_public_key(public_key_pem)
        assert isinstance(public_key, rsa.RSAPublicKey)
        self.public_key = public_key
        self.bodies = bodies

    def send(self, index: int) -> str | None:
        body = self.bodies[index]
        fields = verify_notify(self.public_key, body)
        if fields.get("trade_status") != "TRADE_SUCCESS":
            return f"floor notify {index}: not a success"
        amount = Decimal(fields["total_amount"])
        paid_at = datetime.strptime(fields["gmt_payment"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
        row = {
            "trade_no": fields["trade_no"],
            "paid_at": paid_at,
            "out_trade_no": fields["out_trade_no"],
            "amount": amount,
            "notify_id": fields["notify_id"],
            "raw": body.decode("utf-8"),
        }
        with self.conn, self.conn.cursor() as cur:  # one transaction
            cur.execute(FLOOR_PAYMENT, row)
            found = cur.fetchone()
            if found is None:
                return f"floor notify {index}: no open payment {fields['out_trade_no']} of {amount}"
            row["payment_id"], row["order_id"] = found
            cur.execute(FLOOR_ORDER, row)
            if cur.rowcount != 1:
                raise RuntimeError(f"floor notify {index}: order {row['order_id']} not pending")  # rolls back
            cur.execute(FLOOR_INBOX, row)
            pay_data = {
                "amount": str(amount),
                "out_trade_no": row["out_trade_no"],
                "gateway_trade_no": row["trade_no"],
                "source": "notify",
            }
            cur.execute(FLOOR_EVENTS, {**row, "pay_data": Json(pay_data)})
        return None

    def close(self) -> None:
        self.conn.close()


# --- checks and report ----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    orders: int
    awaiting_shipment: int
    applied: int
    notifications: int
    payments_succeeded: int
    pay_approve_events: int

    def ok(self, expected: int) -> bool:
        return (
            self.orders == expected
            and self.awaiting_shipment == expected
            and self.applied == expected
            and self.notifications == expected
            and self.payments_succeeded == expected
            and self.pay_approve_events == 2 * expected
        )

    def __str__(self) -> str:
        return (
            f"orders={self.orders} awaiting_shipment={self.awaiting_shipment}"
            f" notifications={self.notifications} applied={self.applied}"
            f" payments_succeeded={self.payments_succeeded} pay+approve events={self.pay_approve_events}"
        )


def outcome(dsn: str, prefix: str) -> Outcome:
    """Counts for the orders whose external_id starts with `prefix`."""
    row = query_one(
        dsn,
        """
        SELECT
            (SELECT count(*) FROM orders_order o WHERE o.external_id LIKE %(p)s),
            (SELECT count(*) FROM orders_order o
                WHERE o.external_id LIKE %(p)s AND o.status = 'awaiting_shipment'),
            (SELECT count(*) FROM payments_paymentnotification n JOIN orders_order o ON o.id = n.order_id
                WHERE o.external_id LIKE %(p)s AND n.outcome = 'applied'),
            (SELECT count(*) FROM payments_paymentnotification n
                JOIN payments_payment p ON p.out_trade_no = n.out_trade_no
                JOIN orders_order o ON o.id = p.order_id WHERE o.external_id LIKE %(p)s),
            (SELECT count(*) FROM payments_payment p JOIN orders_order o ON o.id = p.order_id
                WHERE o.external_id LIKE %(p)s AND p.status = 'succeeded'),
            (SELECT count(*) FROM orders_orderevent e JOIN orders_order o ON o.id = e.order_id
                WHERE o.external_id LIKE %(p)s AND e.type IN ('pay', 'approve'))
        """,
        {"p": prefix + "%"},
    )
    return Outcome(*row)


def strays(dsn: str) -> tuple[int, int, int]:
    """(all notification rows not 'applied', all reconciliation cases, all orders not awaiting_shipment)."""
    row = query_one(
        dsn,
        "SELECT (SELECT count(*) FROM payments_paymentnotification WHERE outcome <> 'applied'),"
        " (SELECT count(*) FROM payments_reconciliationcase),"
        " (SELECT count(*) FROM orders_order WHERE status <> 'awaiting_shipment')",
    )
    return tuple(int(x) for x in row)  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    dsn = args.database_url
    cpus = usable_cpus()
    env = bench_env(settings=SETTINGS, database_url=args.database_url, redis_url=args.redis_url)
    print(
        f"notify: {args.notifies} Alipay RSA2 TRADE_SUCCESS notifies (one per order), {args.concurrency} concurrent"
        f" clients, {args.workers} gunicorn workers, {os.cpu_count()} CPUs ({cpus} usable)"
    )
    database_name(dsn)  # refuse early if the name does not look like a bench database

    failed = True
    with scratch_database(dsn, keep=args.keep_db):
        with tempfile.TemporaryDirectory(prefix="oms-bench-notify-keys-") as key_dir:
            began = time.perf_counter()
            migrate(env)
            create_storefront(env)
            migrate_s = time.perf_counter() - began
            began = time.perf_counter()
            django_setup(env)
            from tests.payments.gateway_doubles import FakeGateways

            codes = create_catalog()
            attempts = {
                prefix: create_orders_and_attempts(
                    prefix=prefix, count=count, storefront_code=STOREFRONT_CODE, codes=codes
                )
                for prefix, count in (
                    (WARMUP_PREFIX, args.warmup),
                    (TIMED_PREFIX, args.notifies),
                    (FLOOR_PREFIX, args.notifies),
                )
            }
            close_django_connections()
            rows_s = time.perf_counter() - began

            began = time.perf_counter()
            gateways = FakeGateways(Path(key_dir))  # RSA-2048 keys, in the temp dir only
            warm_bodies, bodies, floor_bodies = (sign_notifies(gateways, found) for found in attempts.values())
            sign_s = time.perf_counter() - began
            public_pem = gateways.alipay_platform.public_pem()
            alipay_env = {k: v for k, v in gateways.settings().items() if k.startswith("ALIPAY_")}
            amounts = sorted({a.amount for a in attempts[TIMED_PREFIX]})
            print(
                f"setup : database {database_name(dsn)} (PostgreSQL {server_version(dsn)}) re-created, migrated,"
                f" storefront in {migrate_s:.1f} s; {len(CATALOG)} SKUs, {args.warmup}+{args.notifies}+{args.notifies}"
                f" orders (warm-up, HTTP, floor) via order_create + one alipay Payment each in {rows_s:.1f} s; keys +"
                f" {len(warm_bodies) + len(bodies) + len(floor_bodies)} signed notifies in {sign_s:.1f} s (all untimed)"
            )
            print(
                f"        amounts {amounts[0]}..{amounts[-1]} yuan ({len(amounts)} distinct),"
                f" notify body {min(map(len, bodies))}-{max(map(len, bodies))} bytes"
            )

            def server_env(url: str) -> dict[str, str]:
                return {**env, **alipay_env, "OMS_SITE_URL": url}

            http_rounds: list[RunResult] = []
            floor_rounds: list[RunResult] = []
            ceiling_rounds: list[RunResult] = []
            http_load, floor_load, ceiling_load = (MachineLoad(cpus=cpus) for _ in range(3))
            with (
                Gunicorn(env=server_env, workers=args.workers, ready_path=NOTIFY_PATH) as server,
                empty_server(workers=args.workers, status="200 OK", body="success") as ceiling,
            ):
                print(
                    f"server: gunicorn oms.wsgi:application, {args.workers} sync workers on {server.url},"
                    f" DJANGO_SETTINGS_MODULE={SETTINGS} DEBUG=false, API_THROTTLE_RATE={THROTTLE_RATE},"
                    f" REDIS_URL={args.redis_url}, ALIPAY_APP_ID={alipay_env['ALIPAY_APP_ID']} (bench keys)"
                )
                endpoint = f"{server.url}{NOTIFY_PATH}"
                warmup_errors: list[str] = []
                if args.warmup:
                    warmup = run_load(
                        count=args.warmup,
                        concurrency=min(args.concurrency, args.warmup),
                        open_client=lambda: NotifyClient(url=endpoint, bodies=warm_bodies),
                    )
                    warmup_errors = warmup.errors
                    print(f"warmup: {warmup.ok} notifies answered success (untimed), {len(warmup.errors)} errors")
                    print_errors("warm-up", warmup.errors)
                assert server.proc is not None
                cpu_spent = 0.0  # gunicorn's CPU seconds during the HTTP rounds
                # HTTP and floor take turns, so a change in what else runs on the machine hits both;
                # between HTTP rounds the idle sync workers use no CPU.
                for start, count in round_slices(args.notifies, args.rounds):
                    with http_load.part(dsn=dsn, gunicorn_pid=server.proc.pid) as stop:
                        round_before = cpu_snapshot(gunicorn_pid=server.proc.pid, dsn=dsn)
                        http_rounds.append(
                            run_load(
                                count=count,
                                start=start,
                                concurrency=args.concurrency,
                                open_client=lambda: NotifyClient(url=endpoint, bodies=bodies),
                                finished=stop,
                            )
                        )
                        round_after = cpu_snapshot(gunicorn_pid=server.proc.pid, dsn=dsn)
                        cpu_spent += sum(
                            cpu - round_before.gunicorn.get(pid, 0.0) for pid, cpu in round_after.gunicorn.items()
                        )
                    each = {"count": count, "start": start, "concurrency": args.concurrency}
                    floor_rounds.append(
                        measured_round(
                            floor_load,
                            dsn=dsn,
                            open_client=lambda: SqlNotifyClient(
                                dsn=dsn, public_key_pem=public_pem, bodies=floor_bodies
                            ),
                            **each,
                        )
                    )
                    assert ceiling.proc is not None
                    ceiling_rounds.append(
                        measured_round(
                            ceiling_load,
                            dsn=dsn,
                            gunicorn_pid=ceiling.proc.pid,
                            open_client=lambda: NotifyClient(url=f"{ceiling.url}{NOTIFY_PATH}", bodies=bodies),
                            **each,
                        )
                    )
                server_log = server.log_tail()
            # gunicorn is stopped, so the single-thread verification figure does not compete with it.
            verify_only = run_verify_floor(public_pem, bodies)

        http, floor, ceiling_run = merge_runs(http_rounds), merge_runs(floor_rounds), merge_runs(ceiling_rounds)
        print(
            f"HTTP  = POST {NOTIFY_PATH} through gunicorn, {args.concurrency} client threads (common.HttpPost: one socket per request)"
        )
        print(
            f"floor = the same work's floor: verify each notify (parse form, signing string, SHA256withRSA) and write"
            f" its rows (payment, order, inbox, 2 events) with raw SQL in one transaction, {args.concurrency}"
            f" psycopg2 connections, on {args.notifies} other orders of the same shape"
        )
        print(
            f"rounds: {len(http_rounds)}, HTTP, floor, then ceiling in each, {args.notifies} notifies per kind in all"
        )
        print(
            f"HTTP  : {http.rate:8.1f} applied notifies/s   p50 {http.percentile_ms(50):7.1f} ms"
            f"   p99 {http.percentile_ms(99):7.1f} ms   ({http.ok} success, {len(http.errors)} errors,"
            f" {http.elapsed_s:.2f} s; gunicorn {cpu_spent * 1000 / max(http.ok, 1):.1f} ms CPU per notify)"
        )
        print_errors("HTTP", http.errors)
        print(f"load  : during HTTP : {http_load.describe()}")
        print(
            f"floor : {floor.rate:8.1f} applied notifies/s   p50 {floor.percentile_ms(50):7.1f} ms"
            f"   p99 {floor.percentile_ms(99):7.1f} ms   ({floor.ok} ok, {len(floor.errors)} errors,"
            f" {floor.elapsed_s:.2f} s)"
        )
        print_errors("floor", floor.errors)
        print(f"load  : during floor: {floor_load.describe()}")
        if http.rate > 0 and floor.rate > 0:
            print(
                f"ratio : HTTP/floor = {http.rate / floor.rate:.3f} of the floor's notifies/s"
                f"  ->  HTTP is {floor.rate / http.rate:.1f}x slower than verification + raw SQL"
            )
        else:
            print("ratio : n/a (a run applied no notify)")
        for line in ceiling_lines(ceiling_run, floor=floor, http=http, load=ceiling_load, unit="notifies"):
            print(line)
        print(
            f"also  : verification alone, 1 thread: {verify_only.rate:.1f} verifications/s"
            f" ({1000 / verify_only.rate:.3f} ms each; {verify_only.passes} passes in {verify_only.elapsed_s:.2f} s)"
        )

        rows = {label: outcome(dsn, prefix) for label, prefix in (("HTTP   ", TIMED_PREFIX), ("floor  ", FLOOR_PREFIX))}
        warm_rows = outcome(dsn, WARMUP_PREFIX)
        not_applied, cases, not_awaiting = strays(dsn)
        same = (
            all(found.ok(args.notifies) for found in rows.values())
            and warm_rows.ok(args.warmup)
            and not_applied == 0
            and cases == 0
            and not_awaiting == 0
        )
        for label, found in rows.items():
            print(f"check : {label} {found}")
        print(f"check : warm-up {warm_rows}")
        print(
            f"check : notifications not applied = {not_applied}, reconciliation cases = {cases},"
            f" orders not awaiting_shipment = {not_awaiting};  {'OK' if same else 'MISMATCH'}"
        )
        if (http.errors or warmup_errors) and server_log.strip():
            print("server log (tail):")
            print(server_log)
        failed = bool(http.errors or floor.errors or ceiling_run.errors or warmup_errors) or not same
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
