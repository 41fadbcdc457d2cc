"""Fixtures for the gateway adapter and sandbox tests: throwaway sandbox keys, a queue stub, and
a tiny local HTTP server that captures notify deliveries. Nothing here leaves 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from django.db import DEFAULT_DB_ALIAS, connections

from payments.sandbox.tasks import sandbox_deliver_notify
from payments.tasks import execute_refund


@pytest.fixture(scope="module")
def sandbox_key_dir(tmp_path_factory: pytest.TempPathFactory):
    """One sandbox key directory per test module: keys are generated once, never committed."""
    return tmp_path_factory.mktemp("sandbox-keys")


@pytest.fixture
def sandbox_settings(settings, sandbox_key_dir):
    settings.SANDBOX_KEY_DIR = sandbox_key_dir
    settings.ALIPAY_APP_ID = ""
    settings.WECHATPAY_MCHID = ""
    return settings


@pytest.fixture
def live_sandbox(sandbox_settings, live_server, queued_deliveries, monkeypatch):
    """The sandbox gateway served over real HTTP; get_gateway() points at it.

    The live server answers each request in its own thread. With persistent connections
    (CONN_MAX_AGE > 0 on PostgreSQL) a thread parked on an HTTP keep-alive socket keeps its
    database session open, and dropping the test database then fails; so the server's
    threads close their connection at the end of every request here.
    """
    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "CONN_MAX_AGE", 0)
    sandbox_settings.OMS_SITE_URL = live_server.url
    return live_server


@pytest.fixture
def queued_deliveries(monkeypatch) -> list[tuple[int, float | None]]:
    """Record (notify id, countdown) instead of sending delivery tasks to a broker."""
    calls: list[tuple[int, float | None]] = []

    def apply_async(args=None, kwargs=None, countdown=None, **options):
        calls.append((args[0], countdown))

    monkeypatch.setattr(sandbox_deliver_notify, "apply_async", apply_async)
    return calls


@dataclass
class CapturedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class CaptureServer:
    """Answers each POST with the next queued (status, body), or `default`, and records it."""

    url: str = ""
    requests: list[CapturedRequest] = field(default_factory=list)
    answers: deque[tuple[int, bytes]] = field(default_factory=deque)
    default: tuple[int, bytes] = (200, b"success")


@pytest.fixture
def capture_server() -> Iterator[CaptureServer]:
    capture = CaptureServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            capture.requests.append(CapturedRequest(self.path, dict(self.headers.items()), body))
            status, answer = capture.answers.popleft() if capture.answers else capture.default
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    capture.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield capture
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def refunds_queued(monkeypatch) -> list[int]:
    """Record the refund ids queued for execution instead of sending them to a broker."""
    queued: list[int] = []
    monkeypatch.setattr(execute_refund, "apply_async", lambda args, countdown=None: queued.append(*args))
    return queued
