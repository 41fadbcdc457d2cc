"""Alipay notifies: applied notifies/s through gunicorn, beside bare RSA2 verification, in one run.

What is measured
----------------
HTTP   N orders (default 2,000), each with one Alipay payment attempt, each paid by one valid
       RSA2-signed ``TRADE_SUCCESS`` notify POSTed to ``/payments/notify/alipay/`` on a real
       gunicorn server (sync workers, ``oms.wsgi:application``) by C client threads (default 8),
       each with its own ``requests.Session``. A notify counts only if it is answered HTTP 200
       with the bare body ``success``. Printed: applied notifies/s (such answers / wall time of
       the run), p50/p99 latency of those answers, and the first few failures.

floor  The bare cost of the signature check the endpoint must do: the same N notify bodies,
       in this process, single-threaded, with ``cryptography``: parse the form body, build the
       signing string the way Alipay signs a notify (every non-empty field but ``sign`` and
       ``sign_type``, sorted, ``k=v`` joined by ``&``), base64-decode ``sign`` and verify
       SHA256withRSA (PKCS#1 v1.5) with the public key loaded once. The N bodies are verified in
       passes until at least a second has gone by. Verification is CPU bound and independent per
       notify, so the all-cores floor is the single-thread rate x the number of CPUs this process
       may run on (ideal linear scaling: an upper bound, since it ignores sharing the machine).

ratio  HTTP applied notifies/s divided by the all-cores floor verifications/s, and its
       inverse ("x slower"). Everything the endpoint does beyond the signature check (storing the
       inbox row, locking order and payment, paying and approving the order, writing its
       timeline, HTTP, Django) is what the gap is made of.

Setup (untimed)
---------------
The database named in ``--database-url`` (the name must contain "bench") is dropped and
re-created, ``manage.py migrate`` runs, ``manage.py create_storefront`` makes the storefront.
Then, in this process (``django.setup()`` on the bench database): a warehouse and SKUs, the orders
through ``orders.services.order_create``, and one ``Payment`` per order with what
``payments.services.payment_start`` writes (``out_trade_no`` = ``<order_no>P01``, amount = payable
total, channel alipay, expiring at the payment deadline, plus its ``payment_started`` event), in bulk.

"Alipay"'s keys are generated in a temporary directory by the test suite's independent signer
(``tests.payments.gateway_doubles.FakeGateways``); gunicorn gets its ``ALIPAY_*`` settings, so our
adapter verifies against that key exactly as it would against Alipay's. Every notify is signed
before the clock starts. Gunicorn runs ``oms.settings.dev`` with ``DEBUG=false``, ``REDIS_URL`` for
cache and broker, ``API_THROTTLE_RATE`` high and ``OMS_SITE_URL`` pointing at itself. A few
warm-up orders (default 4 x workers) are paid untimed first. After the run gunicorn is stopped
(always), the floor runs, and SQL checks that every timed order is ``awaiting_shipment`` and has
exactly one ``applied`` notification. The database is dropped unless ``--keep-db``.

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
import itertools
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import psycopg2
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from psycopg2 import sql

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's bin/, where gunicorn lives
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for oms.*, orders.*, payments.* and tests.payments.gateway_doubles

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/oms_bench_notify"
SETTINGS = "oms.settings.dev"
THROTTLE_RATE = "1000000/min"
NOTIFY_PATH = "/payments/notify/alipay/"
STOCK_PER_SKU = 10**9
ERRORS_SHOWN = 5
HTTP_TIMEOUT_S = 60.0
SERVER_START_TIMEOUT_S = 60.0
FLOOR_MIN_S = 1.0
SETUP_BATCH = 100  # orders created per transaction during setup

TIMED_PREFIX = "BENCH-NOTIFY-"
WARMUP_PREFIX = "BENCH-WARMUP-"
SHANGHAI = ZoneInfo("Asia/Shanghai")

# (code, name, spec, price), as in bench/order_intake.py.
CATALOG: list[tuple[str, str, str, str]] = [
    ("BENCH-TSHIRT-L-BLK", "纯棉T恤", "L码 黑色", "70.00"),
    ("BENCH-MUG-350", "陶瓷马克杯", "350ml 白色", "39.90"),
    ("BENCH-CAP-RED", "棒球帽", "均码 红色", "59.00"),
]
CUSTOMER = {"name": "张小姐", "mobile": "13800138000", "email": "zhang@example.com", "member_id": "M001"}
ADDRESS = {
    "receiver": "张小姐",
    "phone": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "detail": "文三路100号",
    "postcode": "310000",
}


# --- options ------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    cpus = os.cpu_count() or 2
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "-n", "--notifies", type=positive_int, default=2000, help="orders, one notify each (default 2000)"
    )
    parser.add_argument("-c", "--concurrency", type=positive_int, default=8, help="concurrent clients (default 8)")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=2 * cpus,
        help=f"gunicorn sync workers (default 2 x cores = {2 * cpus})",
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up notifies (default 4 x workers)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis for the server's cache and broker; default $REDIS_URL or redis://127.0.0.1:6379/0",
    )
    parser.add_argument("--keep-db", action="store_true", help="leave the database in place afterwards")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 4 * args.workers
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


# --- database and server ----------------------------------------------------------


def database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise SystemExit(f"--database-url has no database name: {url}")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop and re-create {name!r}: the database name must contain 'bench'")
    return name


def admin_dsn(url: str) -> str:
    """The same server, database `postgres`, for CREATE/DROP DATABASE."""
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def drop_database(url: str) -> None:
    conn = psycopg2.connect(admin_dsn(url))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database_name(url))))
    finally:
        conn.close()


def create_database(url: str) -> None:
    drop_database(url)
    conn = psycopg2.connect(admin_dsn(url))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database_name(url))))
    finally:
        conn.close()


def server_version(dsn: str) -> str:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return str(cur.fetchone()[0]).split()[0]
    finally:
        conn.close()


def base_env(args: argparse.Namespace) -> dict[str, str]:
    """What both manage.py/this process and the server run with."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        DEBUG="false",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        API_THROTTLE_RATE=THROTTLE_RATE,
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *command: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"manage.py {' '.join(command)} failed with exit status {result.returncode}")
    return result.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`gunicorn oms.wsgi:application` on 127.0.0.1; use as a context manager so it always stops.

    `env` is called with the server's URL, so OMS_SITE_URL can point at the server itself.
    """

    def __init__(self, *, env: Callable[[str], dict[str, str]], workers: int) -> None:
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env(self.url)
        self.log: IO[bytes] = tempfile.TemporaryFile()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        command = [
            str(BIN / "gunicorn"),
            "oms.wsgi:application",
            "--workers",
            str(self.workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                requests.get(f"{self.url}{NOTIFY_PATH}", timeout=5)  # any answer will do (405 here)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {SERVER_START_TIMEOUT_S:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, chars: int = 4000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]


# --- setup in this process, through the services ---------------------------------------


def django_setup(env: dict[str, str]) -> None:
    """Configure Django in this process for the bench database (settings read the environment)."""
    for name in ("DJANGO_SETTINGS_MODULE", "DEBUG", "DATABASE_URL", "REDIS_URL", "LOG_LEVEL"):
        os.environ[name] = env[name]
    import django

    django.setup()


def close_django_connections() -> None:
    if "django" in sys.modules:
        from django.db import connections

        connections.close_all()


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


class Client(Protocol):
    def send(self, index: int) -> str | None:
        """Do item `index`; None on success, else a short description of what went wrong."""

    def close(self) -> None: ...


@dataclass
class RunResult:
    elapsed_s: float
    latencies_s: list[float] = field(default_factory=list)  # sorted
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank percentile of the successful requests' latencies, in milliseconds."""
        if not self.latencies_s:
            return math.nan
        rank = max(math.ceil(p / 100 * len(self.latencies_s)), 1)
        return self.latencies_s[rank - 1] * 1000


def run_load(*, count: int, concurrency: int, open_client: Callable[[], Client]) -> RunResult:
    """Send items 0..count-1 from `concurrency` threads; clients are opened before the clock starts."""
    clients = [open_client() for _ in range(concurrency)]
    indices = itertools.count()
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    latencies: list[list[float]] = [[] for _ in clients]
    errors: list[str] = []

    def loop(slot: int) -> None:
        client = clients[slot]
        start.wait()
        while True:
            with lock:
                index = next(indices)
            if index >= count:
                return
            began = time.perf_counter()
            try:
                error = client.send(index)
            except Exception as exc:  # a failed notify is a result, not a crash
                error = f"{type(exc).__name__}: {exc}"
            took = time.perf_counter() - began
            if error is None:
                latencies[slot].append(took)
            else:
                with lock:
                    errors.append(error)

    threads = [threading.Thread(target=loop, args=(slot,), daemon=True) for slot in range(concurrency)]
    try:
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    finally:
        for client in clients:
            client.close()
    return RunResult(elapsed_s=elapsed, latencies_s=sorted(itertools.chain(*latencies)), errors=errors)


class NotifyClient:
    """POSTs pre-signed notify bodies, as Alipay does (form-encoded); wants HTTP 200 `success`."""

    def __init__(self, *, url: str, bodies: Sequence[bytes]) -> None:
        self.url = url
        self.bodies = bodies
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    def send(self, index: int) -> str | None:
        response = self.session.post(self.url, data=self.bodies[index], timeout=HTTP_TIMEOUT_S)
        if response.status_code == 200 and response.text == "success":
            return None
        return f"notify {index}: HTTP {response.status_code}: {response.text[:300]!r}"

    def close(self) -> None:
        self.session.close()


# --- the floor: bare RSA2 verification ---------------------------------------------------


def verify_notify(public_key: rsa.RSAPublicKey, body: bytes) -> None:
    """Alipay's notify check, bare: form fields -> signing string -> SHA256withRSA verify.

    Raises cryptography.exceptions.InvalidSignature if the signature does not match.
    """
    fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    message = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in ("sign", "sign_type") and v != "")
    public_key.verify(base64.b64decode(fields["sign"]), message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())


@dataclass(frozen=True)
class FloorResult:
    verified: int
    passes: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.verified / self.elapsed_s


def run_floor(public_key_pem: bytes, bodies: Sequence[bytes]) -> FloorResult:
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


# --- where the CPU went during the timed run (Linux /proc; skipped elsewhere) ----------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process so far, or None if it is gone or unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            pass
    return children


def machine_busy_s() -> float | None:
    """CPU seconds all cores spent not idle (user, nice, system, irq, softirq, steal) since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def backend_pids(dsn: str) -> list[int]:
    """PostgreSQL server processes connected to the bench database (the workers' connections)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [int(row[0]) for row in cur.fetchall()]
    finally:
        conn.close()


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    machine: float | None
    gunicorn: dict[int, float]
    postgres: dict[int, float]
    client: float


def cpu_snapshot(*, gunicorn_pid: int, dsn: str) -> CpuSnapshot:
    def read(pids: Sequence[int]) -> dict[int, float]:
        return {pid: cpu for pid in pids if (cpu := proc_cpu_s(pid)) is not None}

    return CpuSnapshot(
        at=time.perf_counter(),
        machine=machine_busy_s(),
        gunicorn=read([gunicorn_pid, *child_pids(gunicorn_pid)]),
        postgres=read(backend_pids(dsn)),
        client=time.process_time(),
    )


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "n/a"


def cpu_report(before: CpuSnapshot, after: CpuSnapshot, *, cpus: int, notifies: int) -> list[str]:
    """Core-seconds used between two snapshots, by whom; empty if /proc was not readable."""
    if before.machine is None or after.machine is None or not after.gunicorn:
        return []

    def used(start: dict[int, float], end: dict[int, float]) -> float:
        return sum(cpu - start.get(pid, 0.0) for pid, cpu in end.items())

    wall = after.at - before.at
    busy = after.machine - before.machine
    gunicorn = used(before.gunicorn, after.gunicorn)
    postgres = used(before.postgres, after.postgres)
    client = after.client - before.client
    other = max(busy - gunicorn - postgres - client, 0.0)
    per = 1000 / notifies
    return [
        f"cpu   : timed run: machine busy {busy:.1f} of {wall * cpus:.1f} core-s ({busy / (wall * cpus):.0%});"
        f" gunicorn {gunicorn:.1f} s ({gunicorn * per:.1f} ms/notify),"
        f" PostgreSQL backends {postgres:.1f} s ({postgres * per:.1f} ms/notify),"
        f" bench client {client:.1f} s,"
        f" everything else {other:.1f} s (other processes, PostgreSQL background, Redis, kernel)",
    ]


# --- checks and report ----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    orders: int
    awaiting_shipment: int
    applied: int
    notifications: int
    payments_succeeded: int

    def ok(self, expected: int) -> bool:
        return (
            self.orders == expected
            and self.awaiting_shipment == expected
            and self.applied == expected
            and self.notifications == expected
            and self.payments_succeeded == expected
        )

    def __str__(self) -> str:
        return (
            f"orders={self.orders} awaiting_shipment={self.awaiting_shipment}"
            f" notifications={self.notifications} applied={self.applied}"
            f" payments_succeeded={self.payments_succeeded}"
        )


def outcome(dsn: str, *, warmup: bool) -> Outcome:
    """Counts for the timed orders (warmup=False) or the warm-up orders, by external_id."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
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
                        WHERE o.external_id LIKE %(p)s AND p.status = 'succeeded')
                """,
                {"p": (WARMUP_PREFIX if warmup else TIMED_PREFIX) + "%"},
            )
            return Outcome(*cur.fetchone())
    finally:
        conn.close()


def strays(dsn: str) -> tuple[int, int, int]:
    """(all notification rows not 'applied', all reconciliation cases, all orders not awaiting_shipment)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT (SELECT count(*) FROM payments_paymentnotification WHERE outcome <> 'applied'),"
                " (SELECT count(*) FROM payments_reconciliationcase),"
                " (SELECT count(*) FROM orders_order WHERE status <> 'awaiting_shipment')"
            )
            return tuple(int(x) for x in cur.fetchone())  # type: ignore[return-value]
    finally:
        conn.close()


def print_errors(label: str, errors: Sequence[str]) -> None:
    for error in errors[:ERRORS_SHOWN]:
        print(f"  {label} error: {error}")
    if len(errors) > ERRORS_SHOWN:
        print(f"  ... and {len(errors) - ERRORS_SHOWN} more {label} errors")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    dsn = args.database_url
    cpus = usable_cpus()
    env = base_env(args)
    print(
        f"notify: {args.notifies} Alipay RSA2 TRADE_SUCCESS notifies (one per order), {args.concurrency} concurrent"
        f" clients, {args.workers} gunicorn workers, {os.cpu_count()} CPUs ({cpus} usable)"
    )
    database_name(dsn)  # refuse early if the name does not look like a bench database

    failed = True
    create_database(dsn)
    try:
        with tempfile.TemporaryDirectory(prefix="oms-bench-notify-keys-") as key_dir:
            began = time.perf_counter()
            manage(env, "migrate", "--noinput", "-v", "0")
            manage(env, "create_storefront", "Bench", "--code", "bench")
            migrate_s = time.perf_counter() - began
            began = time.perf_counter()
            django_setup(env)
            from tests.payments.gateway_doubles import FakeGateways

            codes = create_catalog()
            warm = create_orders_and_attempts(
                prefix=WARMUP_PREFIX, count=args.warmup, storefront_code="bench", codes=codes
            )
            timed = create_orders_and_attempts(
                prefix=TIMED_PREFIX, count=args.notifies, storefront_code="bench", codes=codes
            )
            close_django_connections()
            rows_s = time.perf_counter() - began

            began = time.perf_counter()
            gateways = FakeGateways(Path(key_dir))  # RSA-2048 keys, in the temp dir only
            warm_bodies = sign_notifies(gateways, warm)
            bodies = sign_notifies(gateways, timed)
            sign_s = time.perf_counter() - began
            alipay_env = {k: v for k, v in gateways.settings().items() if k.startswith("ALIPAY_")}
            amounts = sorted({a.amount for a in timed})
            print(
                f"setup : database {database_name(dsn)} (PostgreSQL {server_version(dsn)}) re-created, migrated,"
                f" storefront in {migrate_s:.1f} s; {len(CATALOG)} SKUs, {args.warmup}+{args.notifies} orders via"
                f" order_create + one alipay Payment each in {rows_s:.1f} s; keys +"
                f" {len(warm_bodies) + len(bodies)} signed notifies in {sign_s:.1f} s (all untimed)"
            )
            print(
                f"        amounts {amounts[0]}..{amounts[-1]} yuan ({len(amounts)} distinct),"
                f" notify body {min(map(len, bodies))}-{max(map(len, bodies))} bytes"
            )

            def server_env(url: str) -> dict[str, str]:
                return {**env, **alipay_env, "OMS_SITE_URL": url}

            with Gunicorn(env=server_env, workers=args.workers) as server:
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
                load_before = load_average()
                assert server.proc is not None
                cpu_before = cpu_snapshot(gunicorn_pid=server.proc.pid, dsn=dsn)
                http = run_load(
                    count=args.notifies,
                    concurrency=args.concurrency,
                    open_client=lambda: NotifyClient(url=endpoint, bodies=bodies),
                )
                cpu_after = cpu_snapshot(gunicorn_pid=server.proc.pid, dsn=dsn)
                server_log = server.log_tail()
            # gunicorn is stopped, so the floor does not compete with it.
            floor = run_floor(gateways.alipay_platform.public_pem(), bodies)

        floor_all = floor.rate * cpus
        print(f"HTTP  = POST {NOTIFY_PATH} through gunicorn, {args.concurrency} client threads (requests.Session)")
        print(
            f"floor = the same {args.notifies} notifies: parse form, build signing string, SHA256withRSA PKCS1v15"
            f" verify (cryptography), 1 thread, {floor.passes} passes in {floor.elapsed_s:.2f} s"
        )
        print(
            f"HTTP  : {http.rate:8.1f} applied notifies/s   p50 {http.percentile_ms(50):7.1f} ms"
            f"   p99 {http.percentile_ms(99):7.1f} ms   ({http.ok} success, {len(http.errors)} errors,"
            f" {http.elapsed_s:.2f} s)"
        )
        print_errors("HTTP", http.errors)
        for line in cpu_report(cpu_before, cpu_after, cpus=cpus, notifies=args.notifies):
            print(line)
        print(f"        load average (1 min) just before the timed run: {load_before}")
        print(f"floor : {floor.rate:8.1f} verifications/s on 1 core (measured; {1000 / floor.rate:.3f} ms each)")
        print(
            f"floor : {floor_all:8.1f} verifications/s on {cpus} cores"
            f" (scaled: 1-core rate x {cpus} usable CPUs, ideal linear scaling)"
        )
        if http.rate > 0:
            print(
                f"ratio : HTTP applied notifies/s / floor verifications/s on {cpus} cores = {http.rate / floor_all:.4f}"
                f"  ->  HTTP is {floor_all / http.rate:.1f}x slower than bare verification"
            )
        else:
            print("ratio : n/a (no notify was applied)")

        timed_rows, warm_rows = outcome(dsn, warmup=False), outcome(dsn, warmup=True)
        not_applied, cases, not_awaiting = strays(dsn)
        same = (
            timed_rows.ok(args.notifies)
            and warm_rows.ok(args.warmup)
            and not_applied == 0
            and cases == 0
            and not_awaiting == 0
        )
        print(
            f"check : timed orders in awaiting_shipment = {timed_rows.awaiting_shipment} (want {args.notifies}),"
            f" PaymentNotification outcome 'applied' = {timed_rows.applied} (want {args.notifies})"
        )
        print(f"check : timed   {timed_rows}")
        print(f"check : warm-up {warm_rows}")
        print(
            f"check : notifications not applied = {not_applied}, reconciliation cases = {cases},"
            f" orders not awaiting_shipment = {not_awaiting};  {'OK' if same else 'MISMATCH'}"
        )
        if (http.errors or warmup_errors) and server_log.strip():
            print("server log (tail):")
            print(server_log)
        failed = bool(http.errors or warmup_errors) or not same
    finally:
        close_django_connections()
        if args.keep_db:
            print(f"kept database {database_name(dsn)} (--keep-db)")
        else:
            drop_database(dsn)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
