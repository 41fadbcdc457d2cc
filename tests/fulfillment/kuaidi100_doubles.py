"""An independent Kuaidi100 for tests: a push builder that signs the way Kuaidi100 documents it
(written here again, not imported from fulfillment.kuaidi100), and a local poll API server.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import urllib.parse
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings

from oms.celery import app as celery_app

PUSH_URL = "/fulfillment/tracking/kuaidi100/"
WORDS = {
    "0": "在途",
    "1": "揽收",
    "2": "疑难",
    "3": "签收",
    "4": "退签",
    "5": "派件",
    "6": "退回",
    "7": "转投",
    "14": "拒签",
}


def kuaidi100_sign(param: str, salt: str | None = None) -> str:
    return hashlib.md5((param + (settings.KUAIDI100_SALT if salt is None else salt)).encode()).hexdigest().upper()


def push_form(
    nu: str,
    state: str,
    scans: list[tuple[str, str, str]],
    *,
    com: str = "shunfeng",
    status: str = "polling",
    salt: str | None = None,
    **top: str,
) -> dict[str, str]:
    """A push as Kuaidi100 sends it. `scans` are (time "YYYY-MM-DD HH:MM:SS", state code, text),
    in any order; data[] goes newest first."""
    data = [
        {"time": t, "ftime": t, "context": text, "status": WORDS[code], "areaCode": "", "areaName": "上海,上海市"}
        for t, code, text in sorted(scans, reverse=True)
    ]
    param = {
        "status": status,
        "billstatus": "got",
        "message": "",
        "autoCheck": "0",
        "comOld": "",
        "comNew": "",
        **top,
        "lastResult": {
            "message": "ok",
            "state": state,
            "ischeck": "1" if state in ("3", "4") else "0",
            "com": com,
            "nu": nu,
            "status": "200",
            "data": data,
        },
    }
    text = json.dumps(param, ensure_ascii=False)
    return {"param": text, "sign": kuaidi100_sign(text, salt)}


@dataclass
class PollServer:
    """Kuaidi100's poll (subscribe) API on 127.0.0.1: records each form, answers from `answers`."""

    url: str = ""
    forms: list[dict[str, str]] = field(default_factory=list)
    answers: deque = field(default_factory=deque)  # (status, JSON body) per request, then `default`
    default: tuple[int, dict] = (200, {"result": True, "returnCode": "200", "message": "提交成功"})


@contextmanager
def poll_api(settings) -> Iterator[PollServer]:
    """Serve the poll API on a random port and point KUAIDI100_POLL_URL (and a key) at it."""
    server_state = PollServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            assert self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
            server_state.forms.append(dict(urllib.parse.parse_qsl(body)))
            status, answer = server_state.answers.popleft() if server_state.answers else server_state.default
            payload = json.dumps(answer, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}/poll"
    settings.KUAIDI100_POLL_URL = server_state.url
    settings.KUAIDI100_KEY = "test-key"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def celery_eager() -> Iterator[None]:
    """Run queued tasks in this thread, as the worker would (countdowns are not waited for), so a
    test that commits (transaction=True) sends nothing to the broker."""
    celery_app.loader.import_default_modules()  # the tasks modules, as a worker imports them at start
    before = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = celery_app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = before
