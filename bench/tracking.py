"""Kuaidi100 pushes: applied pushes/s through gunicorn, beside the same writes in raw SQL, in one run.

What is measured
----------------
HTTP   N shipped parcels (default 500), each getting P pushes (default 4: 揽收, 在途, 派件, 签收),
       as Kuaidi100 sends them: form ``param`` (JSON, every scan so far, newest first) and
       ``sign`` = uppercase MD5(param + KUAIDI100_SALT), POSTed to ``/fulfillment/tracking/kuaidi100/``
       on a real gunicorn server (sync workers, ``oms.wsgi:application``) by C client threads
       (default 8), each with its own ``common.HttpPost``. The pushes go round by round (every
       parcel's 揽收, then every parcel's 在途, ...), so concurrent pushes rarely share a parcel.
       A push counts only if answered HTTP 200 with ``"result": true``. Printed: applied
       pushes/s (such answers / wall time), p50/p99 latency, the first few failures. One push in
       P is a 签收, which also delivers the parcel and its order (delivered_at, timeline).

floor  The same N x P pushes against N other parcels in the same state, by C threads, each with
       its own psycopg2 connection: check the MD5 signature (hashlib + hmac.compare_digest),
       json.loads the param, then in one transaction: INSERT the inbox row, INSERT the push's
       scans ``ON CONFLICT DO NOTHING`` (one multi-row statement), UPDATE the parcel's
       tracking_state / last_tracking_at / picked_up_at; COMMIT. The parcel's id comes from a
       dict, so the floor does no lookup, no lock, no dedupe check, no order, no Django, no HTTP.

ratio  HTTP pushes/s / floor pushes/s, and its inverse.

queries  Per push, measured in this process with CaptureQueriesContext around
       ``fulfillment.tracking.tracking_push_receive`` for one more parcel, one count per state.

Setup (untimed)
---------------
The database named in ``--database-url`` (the name must contain "bench" and "trk") is dropped
and re-created and migrated. In this process (Celery eager, no KUAIDI100_KEY, so nothing leaves
the machine): one warehouse and SKU, then 2N + warm-up + 1 orders through ``order_create``,
``order_pay``, ``order_allocate`` and ``shipment_ship`` (carrier shunfeng). Every push is signed
before the clock starts. Gunicorn runs ``oms.settings.dev`` with ``DEBUG=false`` and the bench's
``KUAIDI100_SALT``. After the run gunicorn is stopped, the floor runs, SQL checks every timed
parcel is delivered with exactly P events and P applied inbox rows, and the database is dropped
unless ``--keep-db``.

Client threads, gunicorn, Redis and PostgreSQL all share this machine's cores; everything talks
to 127.0.0.1 only.

Run
---
    .venv/bin/python bench/tracking.py                 # 500 parcels x 4 pushes, 8 clients
    .venv/bin/python bench/tracking.py -n 200 -c 4 --workers 4 --keep-db

The exit status is 1 on any error or a failed check.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg2
from common import (
    ADDRESS,
    CUSTOMER,
    STOCK_PER_SKU,
    STOREFRONT_CODE,
    Gunicorn,
    HttpPost,
    add_database_url,
    add_load_options,
    add_redis_url,
    bench_env,
    close_django_connections,
    cpu_report,
    cpu_snapshot,
    create_storefront,
    database_name,
    django_setup,
    load_average,
    migrate,
    positive_int,
    print_errors,
    query_one,
    run_load,
    scratch_database,
    server_version,
    usable_cpus,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/oms_bench_trk"
SETTINGS = "oms.settings.dev"
PUSH_PATH = "/fulfillment/tracking/kuaidi100/"
SALT = "oms-bench-kuaidi100-salt"
SETUP_BATCH = 50
CHINA = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 18, 0, tzinfo=CHINA)
# (Kuaidi100 state code, data[].status, context) of each push, in order.
SCRIPT = [
    ("1", "揽收", "【杭州市】顺丰速运 已收取快件"),
    ("0", "在途", "【杭州市】快件已发往 上海"),
    ("0", "在途", "【上海市】快件到达 上海集散中心"),
    ("5", "派件", "【上海市】快递员正在派件"),
    ("0", "在途", "【上海市】快件到达 上海浦东营业部"),
    ("3", "签收", "【上海市】已签收，签收人：本人"),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", "--parcels", type=positive_int, default=500, help="timed parcels (default 500)")
    parser.add_argument(
        "-p", "--pushes", type=int, default=4, choices=range(2, 7), help="pushes per parcel, the last one 签收 (2-6)"
    )
    add_load_options(parser)
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up parcels (default 2 x workers)")
    add_database_url(parser, DEFAULT_DATABASE_URL)
    add_redis_url(parser, "cache and broker")
    parser.add_argument("--keep-db", action="store_true", help="leave the database in place afterwards")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 2 * args.workers
    if "trk" not in database_name(args.database_url):
        parser.error("the bench database's name must contain 'trk'")
    return args


def script(pushes: int) -> list[tuple[str, str, str]]:
    """`pushes` steps: the first ones in transit, the last one 签收."""
    return [*SCRIPT[: pushes - 1], SCRIPT[-1]]


# --- setup in this process, through the services -------------------------------------------


def create_parcels(count: int) -> list[tuple[int, str]]:
    """`count` shipped parcels, one order each, through the services; returns (id, tracking_no)."""
    from django.db import transaction

    import fulfillment.tasks  # noqa: F401  registered, so the eager after-commit jobs run here
    import orders.tasks  # noqa: F401
    from fulfillment.services import order_allocate, shipment_ship
    from inventory.models import Sku, StockLevel, Warehouse
    from orders.models import Storefront
    from orders.services import Actor, OrderInput, order_create, order_pay

    warehouse = Warehouse.objects.create(code="BENCH", name="压测仓", active=True, provinces=["浙江省"])
    sku = Sku.objects.create(code="BENCH-TSHIRT", name="纯棉T恤", spec="L码", price=Decimal("120.00"), active=True)
    StockLevel.objects.create(sku=sku, warehouse=warehouse, on_hand=STOCK_PER_SKU, reserved=0)
    storefront = Storefront.objects.get(code=STOREFRONT_CODE)
    system = Actor.system("bench")
    parcels = []
    for start in range(0, count, SETUP_BATCH):
        with transaction.atomic():
            for index in range(start, min(start + SETUP_BATCH, count)):
                mobile = f"139{index:08d}"  # one customer each, so no parcel is merged
                payload = OrderInput(
                    external_id=f"BENCH-TRK-{index:06d}",
                    order_type="normal",
                    payment_method="alipay",
                    customer={**CUSTOMER, "mobile": mobile},
                    shipping_address={**ADDRESS, "phone": mobile},
                    lines=[{"sku": sku.code, "quantity": 1}],
                    remark="",
                )
                order, _ = order_create(storefront=storefront, payload=payload)
                order_pay(order=order, amount=order.payable_total, actor=Actor.gateway("bench"))
                (parcel,) = order_allocate(order=order)
                tracking_no = f"SF{7_000_000_000 + index}"
                shipment_ship(shipment=parcel, actor=system, carrier="shunfeng", tracking_no=tracking_no)
                parcels.append((parcel.pk, tracking_no))
    return parcels


def push_form(tracking_no: str, step: int, steps: list[tuple[str, str, str]]) -> dict[str, str]:
    data = []
    for index in range(step, -1, -1):
        moment = (T0 + timedelta(hours=3 * index)).strftime("%Y-%m-%d %H:%M:%S")
        code, word, context = steps[index]
        data.append(
            {"time": moment, "ftime": moment, "context": context, "status": word, "areaCode": "", "areaName": ""}
        )
    code = steps[step][0]
    param = {
        "status": "shutdown" if code == "3" else "polling",
        "billstatus": "got",
        "message": "",
        "autoCheck": "0",
        "comOld": "",
        "comNew": "",
        "lastResult": {
            "message": "ok",
            "state": code,
            "ischeck": "1" if code == "3" else "0",
            "com": "shunfeng",
            "nu": tracking_no,
            "status": "200",
            "data": data,
        },
    }
    text = json.dumps(param, ensure_ascii=False, separators=(",", ":"))
    return {"param": text, "sign": hashlib.md5((text + SALT).encode()).hexdigest().upper()}


def round_robin(parcels: Sequence[tuple[int, str]], steps: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """Every parcel's first push, then every parcel's second, ..."""
    return [push_form(tracking_no, step, steps) for step in range(len(steps)) for _, tracking_no in parcels]


def count_queries(parcel: tuple[int, str], steps: list[tuple[str, str, str]]) -> list[tuple[str, int]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from fulfillment.tracking import tracking_push_receive

    counts = []
    for step in range(len(steps)):
        form = push_form(parcel[1], step, steps)
        with CaptureQueriesContext(connection) as captured:
            status, _ = tracking_push_receive(param=form["param"], sign=form["sign"])
        assert status == 200
        counts.append((steps[step][1], len(captured.captured_queries)))
    return counts


# --- load ------------------------------------------------------------------------------------


class PushClient:
    """POSTs the pushes' forms, encoded before the clock starts, as Kuaidi100 does."""

    def __init__(self, *, url: str, forms: Sequence[dict[str, str]]) -> None:
        self.bodies = [urlencode(form).encode() for form in forms]
        self.http = HttpPost(url, {"Content-Type": "application/x-www-form-urlencoded"})

    def send(self, index: int) -> str | None:
        status, content = self.http.post(self.bodies[index])
        if status == 200 and json.loads(content).get("result") is True:
            return None
        return f"push {index}: HTTP {status}: {content[:300]!r}"

    def close(self) -> None:
        pass


# --- the floor: MD5 check + the same writes in raw SQL ----------------------------------------

STATE = {"0": "in_transit", "1": "picked_up", "5": "out_for_delivery", "3": "delivered"}
WORDS = {"揽收": "picked_up", "在途": "in_transit", "派件": "out_for_delivery", "签收": "delivered"}


def floor_push(cur, form: dict[str, str], parcel_ids: dict[str, int]) -> None:
    param, sign = form["param"], form["sign"]
    expected = hashlib.md5((param + SALT).encode()).hexdigest().upper()
    if not hmac.compare_digest(expected, sign):
        raise RuntimeError("floor: bad sign")
    body = json.loads(param)
    last = body["lastResult"]
    shipment_id = parcel_ids[last["nu"]]
    scans = [
        (datetime.strptime(d["time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA), d["context"], WORDS[d["status"]])
        for d in last["data"]
    ]
    newest, oldest = scans[0][0], scans[-1][0]
    cur.execute(
        "INSERT INTO fulfillment_trackingpush (provider, param, sign, digest, status, shipment_id, events_added,"
        " received_at) VALUES ('kuaidi100', %s, %s, %s, 'applied', %s, %s, now())",
        (param, sign, hashlib.sha256(param.encode()).hexdigest(), shipment_id, 1),
    )
    values = ",".join(cur.mogrify("(%s,%s,%s,%s,'',now())", (shipment_id, t, s, c)).decode() for t, c, s in scans)
    cur.execute(
        "INSERT INTO fulfillment_trackingevent (shipment_id, time, state, context, area, created_at) VALUES "
        + values
        + " ON CONFLICT DO NOTHING"
    )
    cur.execute(
        "UPDATE fulfillment_shipment SET tracking_state = %s, last_tracking_at = %s,"
        " picked_up_at = COALESCE(picked_up_at, %s), updated_at = now() WHERE id = %s",
        (STATE[last["state"]], newest, oldest, shipment_id),
    )


@dataclass(frozen=True)
class FloorResult:
    applied: int
    elapsed_s: float
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.applied / self.elapsed_s


def run_floor(dsn: str, forms: Sequence[dict[str, str]], parcel_ids: dict[str, int], concurrency: int) -> FloorResult:
    """The pushes, by `concurrency` threads taking the next push in order, one transaction each."""
    lock = threading.Lock()
    position = {"next": 0}
    errors: list[str] = []
    done = [0] * concurrency

    def loop(slot: int) -> None:
        conn = psycopg2.connect(dsn)
        try:
            with conn.cursor() as cur:
                while True:
                    with lock:
                        index = position["next"]
                        position["next"] += 1
                    if index >= len(forms):
                        return
                    try:
                        floor_push(cur, forms[index], parcel_ids)
                        conn.commit()
                        done[slot] += 1
                    except Exception as error:  # reported, not raised: the run goes on
                        conn.rollback()
                        errors.append(f"floor push {index}: {error}")
        finally:
            conn.close()

    threads = [threading.Thread(target=loop, args=(slot,)) for slot in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return FloorResult(applied=sum(done), elapsed_s=time.perf_counter() - began, errors=errors)


# --- checks ---------------------------------------------------------------------------------


def check(dsn: str, ids: Sequence[int], pushes: int) -> tuple[int, int, int, int]:
    """(parcels delivered, parcels with exactly `pushes` events, applied inbox rows, orders delivered)."""
    row = query_one(
        dsn,
        """
        SELECT
          (SELECT count(*) FROM fulfillment_shipment WHERE id = ANY(%(ids)s) AND status = 'delivered'),
          (SELECT count(*) FROM (SELECT shipment_id FROM fulfillment_trackingevent WHERE shipment_id = ANY(%(ids)s)
              GROUP BY shipment_id HAVING count(*) = %(p)s) AS full_parcels),
          (SELECT count(*) FROM fulfillment_trackingpush WHERE shipment_id = ANY(%(ids)s) AND status = 'applied'),
          (SELECT count(DISTINCT o.id) FROM orders_order o JOIN fulfillment_shipmentline l ON l.order_id = o.id
              WHERE l.shipment_id = ANY(%(ids)s) AND o.delivered_at IS NOT NULL)
        """,
        {"ids": list(ids), "p": pushes},
    )
    return tuple(int(x) for x in row)  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    dsn = args.database_url
    cpus = usable_cpus()
    steps = script(args.pushes)
    env = bench_env(settings=SETTINGS, database_url=dsn, redis_url=args.redis_url)
    env.update(KUAIDI100_SALT=SALT, KUAIDI100_KEY="", OMS_CARRIER_SANDBOX_ENABLED="false")
    total = args.parcels * args.pushes
    print(
        f"tracking: {args.parcels} parcels x {args.pushes} Kuaidi100 pushes ({' → '.join(s[1] for s in steps)}),"
        f" {args.concurrency} concurrent clients, {args.workers} gunicorn workers,"
        f" {os.cpu_count()} CPUs ({cpus} usable)"
    )
    failed = True
    with scratch_database(dsn, keep=args.keep_db):
        began = time.perf_counter()
        migrate(env)
        create_storefront(env)
        migrate_s = time.perf_counter() - began
        began = time.perf_counter()
        os.environ["KUAIDI100_SALT"], os.environ["KUAIDI100_KEY"] = SALT, ""
        os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"  # setup's after-commit jobs run here, offline
        django_setup(env)
        parcels = create_parcels(2 * args.parcels + args.warmup + 1)
        timed, floor_parcels = parcels[: args.parcels], parcels[args.parcels : 2 * args.parcels]
        warm, probe = parcels[2 * args.parcels : -1], parcels[-1]
        setup_s = time.perf_counter() - began
        queries = count_queries(probe, steps)
        close_django_connections()
        began = time.perf_counter()
        forms = round_robin(timed, steps)
        floor_forms = round_robin(floor_parcels, steps)
        warm_forms = round_robin(warm, steps)
        sign_s = time.perf_counter() - began
        print(
            f"setup : database {database_name(dsn)} (PostgreSQL {server_version(dsn)}) re-created and migrated in"
            f" {migrate_s:.1f} s; {len(parcels)} parcels shipped through the services in {setup_s:.1f} s;"
            f" {len(forms) + len(floor_forms) + len(warm_forms)} pushes signed in {sign_s:.2f} s (all untimed)"
        )
        print(f"        push param {min(len(f['param']) for f in forms)}-{max(len(f['param']) for f in forms)} bytes")

        with Gunicorn(
            env=lambda url: {**env, "OMS_SITE_URL": url}, workers=args.workers, ready_path=PUSH_PATH
        ) as server:
            print(
                f"server: gunicorn oms.wsgi:application, {args.workers} sync workers on {server.url},"
                f" DJANGO_SETTINGS_MODULE={SETTINGS} DEBUG=false, REDIS_URL={args.redis_url}"
            )
            endpoint = f"{server.url}{PUSH_PATH}"
            warmup_errors: list[str] = []
            if warm_forms:
                warmup = run_load(
                    count=len(warm_forms),
                    concurrency=min(args.concurrency, len(warm_forms)),
                    open_client=lambda: PushClient(url=endpoint, forms=warm_forms),
                )
                warmup_errors = warmup.errors
                print(f"warmup: {warmup.ok} pushes applied (untimed), {len(warmup.errors)} errors")
                print_errors("warm-up", warmup.errors)
            load_before = load_average()
            assert server.proc is not None
            cpu_before = cpu_snapshot(gunicorn_pid=server.proc.pid, dsn=dsn)
            http = run_load(
                count=total,
                concurrency=args.concurrency,
                open_client=lambda: PushClient(url=endpoint, forms=forms),
            )
            cpu_after = cpu_snapshot(gunicorn_pid=server.proc.pid, dsn=dsn)
            server_log = server.log_tail()
        # gunicorn is stopped, so the floor does not compete with it.
        floor = run_floor(dsn, floor_forms, dict((t, i) for i, t in floor_parcels), args.concurrency)

        print(
            f"HTTP  = POST {PUSH_PATH} through gunicorn, {args.concurrency} client threads (common.HttpPost: one socket per request)"
        )
        print(
            f"floor = the same {total} pushes for other parcels: MD5 check + json.loads + INSERT inbox row,"
            f" INSERT scans ON CONFLICT DO NOTHING, UPDATE parcel, one transaction each, psycopg2,"
            f" {args.concurrency} threads"
        )
        print(
            f"HTTP  : {http.rate:8.1f} applied pushes/s   p50 {http.percentile_ms(50):7.1f} ms"
            f"   p99 {http.percentile_ms(99):7.1f} ms   ({http.ok} applied, {len(http.errors)} errors,"
            f" {http.elapsed_s:.2f} s)"
        )
        print_errors("HTTP", http.errors)
        for line in cpu_report(cpu_before, cpu_after, cpus=cpus, count=total, unit="push"):
            print(line)
        print(f"        load average (1 min) just before the timed run: {load_before}")
        print(
            f"floor : {floor.rate:8.1f} pushes/s   ({floor.applied} applied, {len(floor.errors)} errors,"
            f" {floor.elapsed_s:.2f} s)"
        )
        print_errors("floor", floor.errors)
        if http.rate > 0 and floor.rate > 0:
            print(
                f"ratio : HTTP / floor = {http.rate / floor.rate:.3f}  ->  HTTP is {floor.rate / http.rate:.1f}x"
                " slower than the bare writes"
            )
        print(
            "queries per push (in-process, tracking_push_receive, CaptureQueriesContext): "
            + ", ".join(f"{word} {n}" for word, n in queries)
        )
        delivered, full, applied, orders = check(dsn, [i for i, _ in timed], args.pushes)
        same = delivered == full == orders == args.parcels and applied == total
        print(
            f"check : timed parcels delivered = {delivered}, with {args.pushes} events = {full},"
            f" orders delivered = {orders} (want {args.parcels} each); applied inbox rows = {applied}"
            f" (want {total});  {'OK' if same else 'MISMATCH'}"
        )
        if (http.errors or warmup_errors) and server_log.strip():
            print("server log (tail):")
            print(server_log)
        failed = bool(http.errors or warmup_errors or floor.errors) or not same
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
