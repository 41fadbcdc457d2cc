"""Backups (ops/backup.sh) and the documented restore (ops/restore.sh), for real: the test
database, holding orders paid and refunded through the services, is dumped by the backup
script, restored by the restore script into a fresh database, and checked there with
`manage.py check_ledger`. The restored copy must hold the same rows, and a breach in it must
fail the check. Each restored database is dropped afterwards, whatever happened.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.db.models import F
from django.utils import timezone

from orders.events import Actor
from orders.models import Order
from payments import services as payment_services
from payments.models import BankTransfer, Payment, Refund
from payments.tasks import execute_refund
from tests.orders.factories import OrderFactory
from tests.processes import ROOT, database_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BACKUP = ROOT / "ops" / "backup.sh"
RESTORE = ROOT / "ops" / "restore.sh"
DAY = 24 * 60 * 60


def libpq_env(**extra: str) -> dict[str, str]:
    """The environment the scripts get: the test database's server in libpq's own variables."""
    db = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(PGHOST=db["HOST"] or "127.0.0.1", PGPORT=str(db["PORT"] or 5432), PGUSER=db["USER"])
    if db["PASSWORD"]:
        env["PGPASSWORD"] = db["PASSWORD"]
    return {**env, "DJANGO_SETTINGS_MODULE": "oms.settings.test", "PYTHON": sys.executable, **extra}


def run(command: list[str | Path], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=ROOT, env=libpq_env(**env), capture_output=True, text=True, timeout=300
    )


def admin_sql(sql: str) -> None:
    result = run(["psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-qc", sql])
    assert result.returncode == 0, result.stderr


def back_up(backup_dir: Path, **env: str) -> Path:
    """One run of ops/backup.sh against the test database; returns the dump it wrote."""
    before = set(backup_dir.glob("*.dump"))
    result = run(
        ["sh", BACKUP],
        PGDATABASE=connection.settings_dict["NAME"],
        BACKUP_DIR=str(backup_dir),
        BACKUP_NAME="oms",
        **env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [dump] = set(backup_dir.glob("*.dump")) - before
    return dump


def restore(dump: Path, name: str) -> subprocess.CompletedProcess[str]:
    return run(["sh", RESTORE, dump, database_url(name)])


def check_ledger(name: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "manage.py", "check_ledger"], DATABASE_URL=database_url(name))


def books_of(cursor) -> dict[str, object]:
    """What must survive a restore: the money rows exactly, and the row count of every table."""
    books: dict[str, object] = {}
    for label, sql in {
        "orders": "SELECT order_no, status, payable_total, paid_total, refunded_total FROM orders_order",
        "payments": "SELECT out_trade_no, channel, status, amount FROM payments_payment",
        "refunds": "SELECT out_refund_no, status, amount FROM payments_refund",
    }.items():
        cursor.execute(sql + " ORDER BY 1")
        books[label] = cursor.fetchall()
    for table in connection.introspection.table_names():
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        books[f"rows in {table}"] = cursor.fetchone()[0]
    return books


def restored_books(name: str) -> dict[str, object]:
    with psycopg2.connect(database_url(name)) as restored, restored.cursor() as cursor:
        books = books_of(cursor)
    restored.close()
    return books


def restored_sql(name: str, sql: str, *params: object) -> None:
    with psycopg2.connect(database_url(name)) as restored, restored.cursor() as cursor:
        cursor.execute(sql, params)
    restored.close()


@pytest.fixture
def scratch_database() -> Iterator[Callable[[], str]]:
    """Names for databases to restore into, unique per run; each one is dropped at the end."""
    names: list[str] = []

    def new() -> str:
        names.append(f"oms_restore_{os.getpid()}_{secrets.token_hex(4)}")
        return names[-1]

    try:
        yield new
    finally:
        for name in names:
            admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def finance(db) -> User:
    user = User.objects.create_user("finance", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="payments", codename="approve_refund"))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def books(storefront, tshirt, finance, monkeypatch) -> dict[str, Order]:
    """Four orders through order_create: two paid by matched bank transfers (one of them partly
    refunded through request → approve → execute → paid back by finance), one paid with a refund
    still waiting for approval, one unpaid. Every write is committed, so pg_dump sees it.
    """
    queued: list[int] = []
    monkeypatch.setattr(execute_refund, "apply_async", lambda args, countdown=None: queued.append(*args))

    orders = {
        key: OrderFactory(storefront=storefront, payload__lines=[{"sku": tshirt.code, "quantity": 3}])
        for key in ("refunded", "paid", "refund_requested", "unpaid")
    }
    for n, key in enumerate(("refunded", "paid", "refund_requested")):
        order = orders[key]
        transfer = payment_services.bank_transfer_record(
            payer="杭州某某贸易有限公司",
            amount=order.payable_total,
            remark=f"货款 {order.order_no}",
            received_at=timezone.now(),
            bank_reference=f"BK{n:04d}",
        )
        assert transfer.status == BankTransfer.Status.MATCHED

    refund = payment_services.refund_request(
        order=orders["refunded"], amount=Decimal("50.00"), reason="少发一件", actor=Actor.staff(finance)
    )
    payment_services.refund_approve(refund=refund, user=finance)
    assert queued == [refund.pk]
    payment_services.refund_execute(refund_id=refund.pk)
    payment_services.refund_mark_paid_by_hand(refund=Refund.objects.get(pk=refund.pk), user=finance)
    payment_services.refund_request(
        order=orders["refund_requested"], amount=Decimal("20.00"), reason="价保", actor=Actor.staff(finance)
    )

    refunded = Order.objects.get(pk=orders["refunded"].pk)
    assert refunded.refunded_total == Decimal("50.00")
    assert refunded.paid_total == refunded.payable_total
    assert Payment.objects.filter(status=Payment.Status.SUCCEEDED).count() == 3
    return {key: Order.objects.get(pk=order.pk) for key, order in orders.items()}


def test_a_backup_restores_into_a_fresh_database_with_the_same_books(books, tmp_path, scratch_database):
    source = books_of(connection.cursor())
    dump = back_up(tmp_path)
    assert dump.name.startswith("oms-") and dump.stat().st_size > 0
    assert not list(tmp_path.glob(".*")), "a finished backup leaves no temporary file"

    name = scratch_database()
    result = restore(dump, name)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "账目一致 OK：4 个订单，3 笔支付，2 笔退款" in result.stdout
    assert restored_books(name) == source

    # The check on the restored copy is real: one cent too much on one order fails it.
    order_no = books["refunded"].order_no
    restored_sql(name, "UPDATE orders_order SET paid_total = paid_total + 0.01 WHERE order_no = %s", order_no)
    check = check_ledger(name)
    assert check.returncode != 0
    assert f"订单 {order_no} 已付金额" in check.stdout
    assert "账目检查发现 2 处问题" in check.stderr


def test_a_restore_whose_books_disagree_exits_non_zero(books, tmp_path, scratch_database):
    order_no = books["paid"].order_no
    Order.objects.filter(order_no=order_no).update(refunded_total=F("refunded_total") + Decimal("5.00"))
    dump = back_up(tmp_path)

    name = scratch_database()
    result = restore(dump, name)

    assert result.returncode != 0
    assert f"订单 {order_no} 已退金额 5.00 与成功退款合计 0.00 不符" in result.stdout
    assert "ledger is consistent" not in result.stdout


def test_a_restore_never_writes_over_an_existing_database(books, tmp_path):
    source = books_of(connection.cursor())
    dump = back_up(tmp_path)

    result = restore(dump, connection.settings_dict["NAME"])

    assert result.returncode != 0
    assert "already exists" in result.stderr
    assert "restoring" not in result.stdout
    assert books_of(connection.cursor()) == source


def test_a_damaged_dump_fails_the_restore_before_any_check(books, tmp_path, scratch_database):
    """The tail of the file is cut off: the table of contents still reads, so pg_restore
    creates the tables before it runs out of data, and the one transaction takes them back."""
    dump = back_up(tmp_path)
    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(dump.read_bytes()[:-16])
    listed = run(["pg_restore", "--list", damaged])
    assert listed.returncode == 0, listed.stderr

    name = scratch_database()
    result = restore(damaged, name)

    assert result.returncode != 0
    assert "checking the ledger" not in result.stdout
    with psycopg2.connect(database_url(name)) as restored, restored.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert cursor.fetchone() == (0,), "the restore is one transaction: nothing half-restored"
    restored.close()


def age(path: Path, days: float) -> Path:
    path.write_bytes(b"an older dump")
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))
    return path


def test_backup_keeps_the_last_days_and_deletes_only_its_own_old_dumps(tmp_path):
    expired = age(tmp_path / "oms-20261101T020000Z.dump", days=20)
    stale_partial = age(tmp_path / ".oms-20261101T030000Z.dump.partial", days=20)
    recent = age(tmp_path / "oms-20261122T020000Z.dump", days=13)
    other_database = age(tmp_path / "crm-20261001T020000Z.dump", days=60)
    not_a_dump = age(tmp_path / "notes.txt", days=60)

    dump = back_up(tmp_path, BACKUP_KEEP_DAYS="14")

    assert not expired.exists() and not stale_partial.exists()
    assert recent.exists() and other_database.exists() and not_a_dump.exists()
    assert dump.exists()


def test_a_failed_backup_writes_nothing_and_deletes_nothing(tmp_path):
    expired = age(tmp_path / "oms-20261101T020000Z.dump", days=20)

    result = run(
        ["sh", BACKUP],
        PGDATABASE=f"oms_missing_{secrets.token_hex(4)}",
        BACKUP_DIR=str(tmp_path),
        BACKUP_NAME="oms",
        BACKUP_KEEP_DAYS="14",
    )

    assert result.returncode != 0
    assert "does not exist" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == [expired.name]


def test_backup_refuses_a_retention_of_zero_days(tmp_path):
    result = run(
        ["sh", BACKUP], PGDATABASE=connection.settings_dict["NAME"], BACKUP_DIR=str(tmp_path), BACKUP_KEEP_DAYS="0"
    )
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []


@contextmanager
def schedule(backup_dir: Path, database: str, every: int = 1) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """ops/backup-schedule.sh every `every` seconds; at the end SIGTERM, as `docker compose stop` sends it."""
    log = backup_dir.parent / f"{backup_dir.name}.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            ["sh", str(ROOT / "ops" / "backup-schedule.sh")],
            cwd=ROOT,
            env=libpq_env(
                PGDATABASE=database, BACKUP_DIR=str(backup_dir), BACKUP_NAME="oms", BACKUP_INTERVAL_SECONDS=str(every)
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process, log
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            finally:
                process.kill()


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_schedule_backs_up_every_interval(tmp_path):
    dumps = tmp_path / "dumps"
    with schedule(dumps, connection.settings_dict["NAME"]) as (_process, log):
        wait_for(lambda: len(list(dumps.glob("oms-*.dump"))) >= 2)
    assert log.read_text().count("backup: wrote ") >= 2


def sleeping(seconds: int) -> list[int]:
    """Processes running `sleep <seconds>` (found in /proc)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == f"sleep\0{seconds}\0".encode():
                pids.append(int(cmdline.parent.name))
        except OSError:  # the process ended while we looked
            continue
    return pids


def test_the_schedule_stops_at_once_on_sigterm_while_it_sleeps(tmp_path):
    every = 3000 + secrets.randbelow(600)  # an interval no other process is sleeping
    dumps = tmp_path / "dumps"
    with schedule(dumps, connection.settings_dict["NAME"], every=every) as (process, _log):
        wait_for(lambda: len(list(dumps.glob("oms-*.dump"))) == 1 and len(sleeping(every)) == 1)
        stopped = time.monotonic()
    assert process.returncode == 0
    assert time.monotonic() - stopped < 5, "it must not sleep on until docker's kill"
    left = sleeping(every)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "its sleep ends with it"


def test_the_schedule_reports_a_failed_run_and_tries_again(tmp_path):
    dumps = tmp_path / "dumps"
    with schedule(dumps, f"oms_missing_{secrets.token_hex(4)}") as (process, log):
        wait_for(lambda: log.read_text().count("backup: FAILED") >= 2)
        assert process.poll() is None, "a failed run does not end the schedule"
    assert list(dumps.iterdir()) == []
