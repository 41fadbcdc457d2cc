"""Start real Celery processes (worker, beat) for a test, against the test database and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url(name: str | None = None) -> str:
    """The test database's URL, or that of database `name` on the same server."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name or db['NAME']}"


@contextmanager
def celery_processes(kinds: list[str], *, log_dir: Path, **env_extra: str) -> Iterator[str]:
    """Run `celery worker` / `celery beat` on a private queue; yields the queue name.

    The test process's own producer is pointed at the same queue, so tasks queued by the
    code under test (on_commit, beat) reach this worker and no other.
    """
    from oms.celery import app

    queue = f"test-{uuid.uuid4().hex[:10]}"
    previous_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "oms.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        **env_extra,
    }
    commands = {
        "worker": ["worker", "-Q", queue, "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        "beat": ["beat", "-s", str(log_dir / "beat-schedule"), "--max-interval", "1"],
    }
    with ExitStack() as stack:
        processes = []
        for kind in kinds:
            log = stack.enter_context(open(log_dir / f"{kind}.log", "w"))
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "oms", *commands[kind], "-l", "INFO"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        try:
            yield queue
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
            app.conf.task_default_queue = previous_queue
            for kind in kinds:
                print(f"--- {kind} log ---\n" + (log_dir / f"{kind}.log").read_text()[-2000:])
