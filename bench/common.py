"""What the benchmarks in bench/ share: the bench database, manage.py, gunicorn, the load runner, /proc CPU.

Not a benchmark itself. Each benchmark is run as a script (``.venv/bin/python bench/X.py``), so
its own folder is first on ``sys.path`` and it imports this module as ``common``. Importing it
puts the repository root on ``sys.path`` too, for the benchmarks that run Django in-process
(``oms.*``, ``orders.*``, ``payments.*``, ``tests.payments.gateway_doubles``).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import requests
from psycopg2 import sql

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's bin/, where gunicorn lives
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

THROTTLE_RATE = "1000000/min"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
STOREFRONT_CODE = "bench"
STOCK_PER_SKU = 10**9
ERRORS_SHOWN = 5
HTTP_TIMEOUT_S = 60.0
SERVER_START_TIMEOUT_S = 120.0  # workers import Django slowly on a busy, shared machine
WARMUP_PREFIX = "BENCH-WARMUP-"

# (code, name, spec, price); more SKUs than these get generated names.
CATALOG: list[tuple[str, str, str, str]] = [
    ("BENCH-TSHIRT-L-BLK", "纯棉T恤", "L码 黑色", "70.00"),
    ("BENCH-MUG-350", "陶瓷马克杯", "350ml 白色", "39.90"),
    ("BENCH-CAP-RED", "棒球帽", "均码 红色", "59.00"),
]

# The request body of tests/conftest.py ORDER_BODY: customer and shipping address.
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

# orders_order's NOT NULL columns, as order_create fills them (the nullable ones, coupon_id, paid_at,
# ..., cancelled_at, are left NULL).
ORDER_COLUMNS = (
    "order_no",
    "storefront_id",
    "external_id",
    "request_fingerprint",
    "order_type",
    "payment_method",
    "status",
    "customer_name",
    "customer_mobile",
    "customer_email",
    "customer_member_id",
    "receiver",
    "receiver_phone",
    "province",
    "city",
    "district",
    "address_detail",
    "postcode",
    "goods_total",
    "shipping_fee",
    "discount_total",
    "payable_total",
    "paid_total",
    "refunded_total",
    "payment_deadline",
    "remark",
    "review_flags",
    "cancel_reason",
    "cancel_note",
    "carrier",
    "tracking_no",
    "created_at",
    "updated_at",
)


# --- options ------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """-c/--concurrency and --workers: client threads and gunicorn sync workers."""
    cpus = os.cpu_count() or 2
    parser.add_argument("-c", "--concurrency", type=positive_int, default=8, help="concurrent clients (default 8)")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open load: offer this many requests/s in all (each latency counted from when its request was due);"
        " default: closed loop, every client sends again as soon as it is answered",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=2 * cpus,
        help=f"gunicorn sync workers (default 2 x cores = {2 * cpus})",
    )


def add_database_url(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--database-url", default=default, help=f"default {default}")


def add_redis_url(parser: argparse.ArgumentParser, used_for: str) -> None:
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        help=f"Redis for the server's {used_for}; default $REDIS_URL or {DEFAULT_REDIS_URL}",
    )


# --- databases ----------------------------------------------------------------


def database_name(url: str) -> str:
    """The database in `url`; refuses a URL without one or one whose name lacks "bench"."""
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise SystemExit(f"--database-url has no database name: {url}")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop and re-create {name!r}: the database name must contain 'bench'")
    return name


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def admin_dsn(url: str) -> str:
    """The same server, database `postgres`, for CREATE/DROP DATABASE and CHECKPOINT."""
    return with_database(url, "postgres")


def admin(url: str, statement: sql.Composable | str) -> None:
    """Run one statement outside a transaction on the `postgres` database of url's server."""
    conn = psycopg2.connect(admin_dsn(url))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def drop_database(url: str, name: str | None = None) -> None:
    """Drop `name` (default: the database in `url`, which must look like a bench database)."""
    name = database_name(url) if name is None else name
    admin(url, sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def create_database(url: str, name: str | None = None, *, template: str | None = None) -> None:
    """Drop and create `name` (default: the database in `url`), empty or as a copy of `template`."""
    name = database_name(url) if name is None else name
    drop_database(url, name)
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    admin(url, statement)


@contextmanager
def scratch_database(url: str, *, keep: bool) -> Iterator[None]:
    """Re-create the database in `url` for the block; afterwards drop it, or say it was kept (--keep-db)."""
    create_database(url)
    try:
        yield
    finally:
        close_django_connections()
        if keep:
            print(f"kept database {database_name(url)} (--keep-db)")
        else:
            drop_database(url)


def query_all(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Every row of one query, in its own connection and transaction."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()


def query_one(dsn: str, statement: str, params: Any = None) -> tuple[Any, ...]:
    """The one row of a one-row query, in its own connection and transaction."""
    return query_all(dsn, statement, params)[0]


def server_version(dsn: str) -> str:
    return str(query_one(dsn, "SHOW server_version")[0]).split()[0]


def storefront_row(dsn: str, code: str = STOREFRONT_CODE) -> tuple[int, str]:
    row = query_one(dsn, "SELECT id, code FROM orders_storefront WHERE code = %s", (code,))
    return int(row[0]), str(row[1])


# --- manage.py and Django in this process -------------------------------------------


def bench_env(*, settings: str, database_url: str, redis_url: str, throttle: bool = True) -> dict[str, str]:
    """The environment manage.py, the server and Django in this process run with: DEBUG=false."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=settings,
        DEBUG="false",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    if throttle:
        env["API_THROTTLE_RATE"] = THROTTLE_RATE
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


def migrate(env: dict[str, str]) -> None:
    manage(env, "migrate", "--noinput", "-v", "0")


def create_storefront(env: dict[str, str], code: str = STOREFRONT_CODE) -> str:
    """Return the new storefront's API key (the last line `create_storefront` prints)."""
    output = manage(env, "create_storefront", "Bench", "--code", code)
    return [line for line in output.splitlines() if line.strip()][-1].strip()


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


# --- catalog ------------------------------------------------------------------------


@dataclass(frozen=True)
class SkuRow:
    id: int
    level_id: int  # its one stock row
    code: str
    name: str
    spec: str
    price: Decimal


def catalog(count: int, base: Sequence[tuple[str, str, str, str]] = CATALOG) -> list[tuple[str, str, str, str]]:
    extra = [(f"BENCH-SKU-{i:03d}", f"商品 {i}", "默认", f"{10 + i}.50") for i in range(len(base), count)]
    return [*base, *extra][:count]


def create_skus(dsn: str, count: int, base: Sequence[tuple[str, str, str, str]] = CATALOG) -> list[SkuRow]:
    """One warehouse, `count` SKUs (`base` first) with STOCK_PER_SKU units each, none reserved."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO inventory_warehouse (code, name, active, provinces, priority)"
                " VALUES ('BENCH', '压测仓', true, '[]', 100) RETURNING id"
            )
            (warehouse_id,) = cur.fetchone()
            skus = []
            for code, name, spec, price in catalog(count, base):
                cur.execute(
                    "INSERT INTO inventory_sku (code, name, spec, price, active, created_at, bin_location, barcode)"
                    " VALUES (%s, %s, %s, %s, true, now(), '', '') RETURNING id",
                    (code, name, spec, Decimal(price)),
                )
                (sku_id,) = cur.fetchone()
                cur.execute(
                    "INSERT INTO inventory_stocklevel (sku_id, warehouse_id, on_hand, reserved, updated_at)"
                    " VALUES (%s, %s, %s, 0, now()) RETURNING id",
                    (sku_id, warehouse_id, STOCK_PER_SKU),
                )
                (level_id,) = cur.fetchone()
                skus.append(SkuRow(sku_id, level_id, code, name, spec, Decimal(price)))
        return skus
    finally:
        conn.close()


# --- gunicorn -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`gunicorn oms.wsgi:application` on 127.0.0.1; use as a context manager so it always stops.

    `env` is the server's environment, or a function of the server's URL that returns it (so
    OMS_SITE_URL can point at the server itself). It is ready once `ready_path` answers at all.
    `app` serves another WSGI application instead, found on bench/ first (see `empty_server`).
    """

    def __init__(
        self,
        *,
        env: dict[str, str] | Callable[[str], dict[str, str]],
        workers: int,
        ready_path: str = "/api/v1/orders/",
        app: str = "oms.wsgi:application",
    ) -> None:
        self.app = app
        self.workers = workers
        self.ready_path = ready_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env(self.url) if callable(env) else env
        self.log: IO[bytes] = tempfile.TemporaryFile()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        command = [
            str(BIN / "gunicorn"),
            self.app,
            "--workers",
            str(self.workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ]
        if self.app != "oms.wsgi:application":
            command += ["--pythonpath", str(Path(__file__).resolve().parent)]
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
                # Any answer will do; a slow first one (workers still importing Django on a busy,
                # shared machine) means "not yet", not a crash.
                requests.get(f"{self.url}{self.ready_path}", timeout=30)
                return
            except (requests.ConnectionError, requests.Timeout):
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


def empty_server(*, workers: int, status: str, body: str) -> Gunicorn:
    """The HTTP ceiling's server: bench/empty_app.py on gunicorn, as many sync workers as the real one.

    It answers every request with `status` and `body` after reading the request body, so the
    benchmark's own client counts its answers; its rate is what HTTP alone allows here.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(EMPTY_APP_STATUS=status, EMPTY_APP_BODY=body, PYTHONUNBUFFERED="1")
    return Gunicorn(env=env, workers=workers, ready_path="/", app="empty_app:application")


# --- a lean HTTP client ---------------------------------------------------------------------


class HttpPost:
    """POSTs bodies to one URL over plain sockets, one connection per request, as a load tool does.

    The client threads share the machine's two cores with the server, so what the client spends
    on each request is taken from the server. ``requests`` spends about 1.1 ms of CPU per POST
    here (URL parsing, header objects, cookie jars, adapters); this sends the same request
    (request line, Host, the given headers, Content-Length, ``Connection: close``) with one
    ``sendall`` of bytes built up front, and reads the answer until the server closes, as
    gunicorn's sync workers do after every answer (they keep no connection alive). The raw-SQL
    floor's client is psycopg2, which is lean in the same way.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.hostname, url
        self.address = (parts.hostname, parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")

    def post(self, body: bytes) -> tuple[int, bytes]:
        """(status code, response body) of one POST; raises OSError or ValueError if it fails."""
        with socket.create_connection(self.address, timeout=HTTP_TIMEOUT_S) as sock:
            sock.sendall(b"%s%d\r\n\r\n%s" % (self.head, len(body), body))
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        answer = b"".join(chunks)
        head, separator, content = answer.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if not separator or len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP answer: {answer[:200]!r}")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding":
                raise ValueError("chunked answers are not read by this client")
            if name.strip().lower() == b"content-length" and int(value) != len(content):
                raise ValueError(f"answer cut short: {len(content)} of {int(value)} bytes")
        return int(status_line[1]), content


# --- load runner ------------------------------------------------------------------------


class Client(Protocol):
    def send(self, index: int) -> str | None:
        """Do item `index`; None on success, else a short description of what went wrong."""
        ...

    def close(self) -> None: ...


@dataclass
class RunResult:
    elapsed_s: float
    latencies_s: list[float] = field(default_factory=list)  # successful items only, sorted
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank percentile of the successful items' latencies, in milliseconds."""
        if not self.latencies_s:
            return math.nan
        rank = max(math.ceil(p / 100 * len(self.latencies_s)), 1)
        return self.latencies_s[rank - 1] * 1000


def run_load(
    *,
    count: int,
    concurrency: int,
    open_client: Callable[[], Client],
    start: int = 0,
    finished: Callable[[], None] | None = None,
    rate: float | None = None,
) -> RunResult:
    """Send items start..start+count-1 from `concurrency` threads; clients are opened before the clock starts.

    Closed loop by default: each thread sends its next item as soon as the last is answered,
    so the latency is what saturation gives (about concurrency / throughput). With `rate`
    (items/s) the load is open: item k is due at k / rate seconds, a free thread sends it then
    (never earlier), and its latency counts from when it was due, so time spent waiting for a
    free thread when the server falls behind is counted too (no coordinated omission).

    `finished` is called when the last item is done, before the clients are closed.
    """
    clients = [open_client() for _ in range(concurrency)]
    indices = itertools.count(start)
    lock = threading.Lock()
    ready = threading.Barrier(concurrency + 1)
    latencies: list[list[float]] = [[] for _ in clients]
    errors: list[str] = []
    schedule_from: list[float] = []  # set by the main thread just before it releases the others

    def loop(slot: int) -> None:
        client = clients[slot]
        ready.wait()
        while True:
            with lock:
                index = next(indices)
            if index >= start + count:
                return
            began = time.perf_counter()
            if rate is not None:
                due = schedule_from[0] + (index - start) / rate
                if due > began:
                    time.sleep(due - began)
                began = due
            try:
                error = client.send(index)
            except Exception as exc:  # a failed item is a result, not a crash
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
        schedule_from.append(time.perf_counter())
        ready.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        if finished is not None:
            finished()
    finally:
        for client in clients:
            client.close()
    return RunResult(elapsed_s=elapsed, latencies_s=sorted(itertools.chain(*latencies)), errors=errors)


def merge_runs(runs: Sequence[RunResult]) -> RunResult:
    """Several rounds of one kind as one result: their items over the sum of their wall times."""
    return RunResult(
        elapsed_s=sum(run.elapsed_s for run in runs),
        latencies_s=sorted(itertools.chain.from_iterable(run.latencies_s for run in runs)),
        errors=[error for run in runs for error in run.errors],
    )


def round_slices(count: int, rounds: int) -> list[tuple[int, int]]:
    """(start, count) of each round: items 0..count-1 in `rounds` nearly equal consecutive slices."""
    rounds = min(rounds, count)
    bounds = [count * r // rounds for r in range(rounds + 1)]
    return [(bounds[r], bounds[r + 1] - bounds[r]) for r in range(rounds)]


def add_rounds_option(parser: argparse.ArgumentParser, default: int = 4) -> None:
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=default,
        help=f"the timed part and its floor take turns in this many rounds, so both see the same machine"
        f" (default {default})",
    )


def print_errors(label: str, errors: Sequence[str]) -> None:
    for error in errors[:ERRORS_SHOWN]:
        print(f"  {label} error: {error}")
    if len(errors) > ERRORS_SHOWN:
        print(f"  ... and {len(errors) - ERRORS_SHOWN} more {label} errors")


# --- where the CPU went during a timed run (Linux /proc; skipped elsewhere) ----------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    rows = query_all(
        dsn, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return [int(row[0]) for row in rows]


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    machine: float | None
    gunicorn: dict[int, float]
    postgres: dict[int, float]
    client: float


def cpu_snapshot(*, gunicorn_pid: int | None, dsn: str) -> CpuSnapshot:
    """CPU used so far by the machine, gunicorn (if any), the bench database's backends, this process."""

    def read(pids: Sequence[int]) -> dict[int, float]:
        return {pid: cpu for pid in pids if (cpu := proc_cpu_s(pid)) is not None}

    return CpuSnapshot(
        at=time.perf_counter(),
        machine=machine_busy_s(),
        gunicorn=read([gunicorn_pid, *child_pids(gunicorn_pid)]) if gunicorn_pid is not None else {},
        postgres=read(backend_pids(dsn)),
        client=time.process_time(),
    )


@dataclass
class MachineLoad:
    """Who kept the cores busy during one timed part (or several, added up).

    The benchmarks share the machine with whatever else runs on it; a floor measured in the
    same run only helps if both parts saw the same weather. This says how much of the
    machine other processes took during each part ("other" = all busy CPU time minus this
    benchmark's own processes: client, gunicorn, the bench database's backends), and the
    1-minute load average at each part's start.
    """

    cpus: int
    wall_s: float = 0.0
    busy_s: float = 0.0
    ours_s: float = 0.0
    client_s: float = 0.0
    server_s: float = 0.0
    postgres_s: float = 0.0
    load_averages: list[str] = field(default_factory=list)
    readable: bool = True

    @contextmanager
    def part(self, *, dsn: str, gunicorn_pid: int | None = None) -> Iterator[Callable[[], None]]:
        """Measure the block; it may call the yielded `stop` early (before the bench closes its
        database connections, whose backends' CPU must be read while they still exist).
        """
        self.load_averages.append(load_average())
        before = cpu_snapshot(gunicorn_pid=gunicorn_pid, dsn=dsn)
        snapshots: list[CpuSnapshot] = []

        def stop() -> None:
            if not snapshots:
                snapshots.append(cpu_snapshot(gunicorn_pid=gunicorn_pid, dsn=dsn))

        yield stop
        stop()
        after = snapshots[0]
        if before.machine is None or after.machine is None:
            self.readable = False
            return

        def used(start: dict[int, float], end: dict[int, float]) -> float:
            return sum(cpu - start.get(pid, 0.0) for pid, cpu in end.items())

        self.wall_s += after.at - before.at
        self.busy_s += after.machine - before.machine
        self.client_s += after.client - before.client
        self.server_s += used(before.gunicorn, after.gunicorn)
        self.postgres_s += used(before.postgres, after.postgres)
        self.ours_s = self.client_s + self.server_s + self.postgres_s

    @property
    def others_cores(self) -> float:
        """Cores other processes kept busy, on average over the part."""
        return max(self.busy_s - self.ours_s, 0.0) / self.wall_s if self.wall_s > 0 else math.nan

    def describe(self) -> str:
        loads = ", ".join(self.load_averages)
        if not self.readable or self.wall_s <= 0:
            return f"load average (1 min) at its start: {loads}; CPU accounting n/a (no /proc)"
        return (
            f"machine busy {self.busy_s / (self.wall_s * self.cpus):.0%} of {self.cpus} cores;"
            f" this benchmark {self.ours_s:.1f} core-s (client {self.client_s:.1f}"
            + (f", gunicorn {self.server_s:.1f}" if self.server_s else "")
            + f", PostgreSQL backends {self.postgres_s:.1f}), other processes"
            f" {max(self.busy_s - self.ours_s, 0.0):.1f} core-s = {self.others_cores:.2f} cores on average;"
            f" load average (1 min) at its start: {loads}"
        )


def ceiling_lines(ceiling: RunResult, *, floor: RunResult, http: RunResult, load: MachineLoad, unit: str) -> list[str]:
    """What the HTTP ceiling (bench/empty_app.py, see `empty_server`) did, beside the floor and the endpoint.

    The ceiling's share of the floor bounds the endpoint's: the same clients and gunicorn workers
    with an application that does nothing cannot be beaten by one that does the work.
    """
    lines = [
        f"ceiling: {ceiling.rate:8.1f} {unit}/s   p50 {ceiling.percentile_ms(50):7.1f} ms"
        f"   p99 {ceiling.percentile_ms(99):7.1f} ms   ({ceiling.ok} ok, {len(ceiling.errors)} errors,"
        f" {ceiling.elapsed_s:.2f} s; the same client threads and requests, answered on the same number of"
        f" gunicorn sync workers by bench/empty_app.py, which reads the body and answers: HTTP alone)",
        f"load  : during ceiling: {load.describe()}",
    ]
    lines += [f"ceiling error: {error}" for error in ceiling.errors[:ERRORS_SHOWN]]
    if ceiling.rate > 0 and floor.rate > 0 and http.rate > 0:
        lines.append(
            f"bound : ceiling/floor = {ceiling.rate / floor.rate:.3f} (no endpoint served and loaded this way"
            f" can pass that share of the floor); HTTP/ceiling = {http.rate / ceiling.rate:.3f}"
        )
    return lines


def measured_round(load: MachineLoad, *, dsn: str, gunicorn_pid: int | None = None, **run: Any) -> RunResult:
    """One round of `run_load(**run)`, its CPU and the machine's counted into `load`."""
    with load.part(dsn=dsn, gunicorn_pid=gunicorn_pid) as stop:
        return run_load(finished=stop, **run)


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "n/a"


def cpu_report(before: CpuSnapshot, after: CpuSnapshot, *, cpus: int, count: int, unit: str) -> list[str]:
    """Core-seconds used between two snapshots, by whom, per `unit` of `count`; empty without /proc."""
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
    per = 1000 / count
    return [
        f"cpu   : timed run: machine busy {busy:.1f} of {wall * cpus:.1f} core-s ({busy / (wall * cpus):.0%});"
        f" gunicorn {gunicorn:.1f} s ({gunicorn * per:.1f} ms/{unit}),"
        f" PostgreSQL backends {postgres:.1f} s ({postgres * per:.1f} ms/{unit}),"
        f" bench client {client:.1f} s,"
        f" everything else {other:.1f} s (other processes, PostgreSQL background, Redis, kernel)",
    ]


# --- SQL statements by kind (the benchmarks that count what Django sends) ----------------------

TABLE_RE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


def statement_kind(statement: str) -> str:
    """A statement's verb and first table, with GROUP BY / FOR UPDATE (SKIP LOCKED) marks."""
    words = statement.lstrip().split(None, 1)
    verb = words[0].upper() if words else "?"
    if verb in {"SAVEPOINT", "RELEASE", "ROLLBACK"}:
        return "SAVEPOINT / RELEASE SAVEPOINT"
    match = TABLE_RE.search(statement)
    kind = f"{verb} {match.group(1)}" if match else verb
    if "GROUP BY" in statement:
        kind += " ... GROUP BY"
    if "SKIP LOCKED" in statement:
        kind += " ... FOR UPDATE SKIP LOCKED"
    elif "FOR UPDATE" in statement:
        kind += " ... FOR UPDATE"
    return kind
