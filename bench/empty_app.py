"""The HTTP ceiling: a WSGI application that reads the request body and answers, and does nothing else.

The benchmarks serve it from the same gunicorn (same sync workers) and send it the same
requests from the same client threads as the real endpoint. Its rate is what HTTP alone allows
on this machine, with the load generator sharing the cores: no endpoint served this way can be
faster. ``EMPTY_APP_STATUS`` and ``EMPTY_APP_BODY`` say what it answers (``200 OK`` and
``success`` unless set), so a benchmark's client counts its answers as it counts the real ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

STATUS = os.environ.get("EMPTY_APP_STATUS", "200 OK")
BODY = os.environ.get("EMPTY_APP_BODY", "success").encode()
HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))]


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response(STATUS, HEADERS)
    return [BODY]
