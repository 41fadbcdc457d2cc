"""oms.jobs: the short way of writing a Celery job into Redis writes what apply_async writes.

A real worker running jobs written this way is tested in tests/fulfillment/test_clock_worker.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta

import pytest
import redis
from celery import Celery
from django.conf import settings as django_settings

from fulfillment.tasks import allocate_order
from oms.celery import app
from oms.jobs import RedisJobWriter, send_job

pytestmark = pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs REDIS_URL")

ALLOCATE = "fulfillment.tasks.allocate_order"


@app.task(name="tests.oms.test_jobs.expiring", expires=60, shared=False)
def expiring() -> None:
    """A task with an option of its own: apply_async would give its message an expiry."""


@pytest.fixture
def private_queue():
    """The app's default queue pointed at a fresh Redis list; yields (name, client)."""
    queue = f"test-jobs-{uuid.uuid4().hex[:10]}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        yield queue, client
    finally:
        app.conf.task_default_queue = previous
        client.delete(queue)


def pop_entry(client: redis.Redis, queue: str) -> dict:
    raw = client.rpop(queue)
    assert raw is not None, "nothing was queued"
    return json.loads(raw)


def shape(value):
    """The keys at every level of a JSON object, with the types of its leaves."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__


@pytest.mark.parametrize(
    ("name", "args", "countdown"),
    [
        (ALLOCATE, (41,), None),
        (ALLOCATE, (41,), 30),
        ("fulfillment.tasks.sandbox_carrier_push", ("SF1234567890", 0, "2026-12-05T10:00:00+08:00", 1), 5),
    ],
)
def test_the_short_way_writes_what_apply_async_writes(private_queue, name, args, countdown):
    queue, client = private_queue
    writer = RedisJobWriter.for_app(app)
    assert writer is not None and writer.covers(name)

    app.signature(name, args=args).apply_async(countdown=countdown)
    celerys = pop_entry(client, queue)
    writer.send(name, args, countdown)
    ours = pop_entry(client, queue)
    assert client.llen(queue) == 0

    assert shape(ours) == shape(celerys)
    assert base64.b64decode(ours["body"]) == base64.b64decode(celerys["body"])
    varying = {"id", "root_id", "eta"}
    assert {k: v for k, v in ours["headers"].items() if k not in varying} == {
        k: v for k, v in celerys["headers"].items() if k not in varying
    }
    assert ours["headers"]["root_id"] == ours["headers"]["id"] == ours["properties"]["correlation_id"]
    unique = {"correlation_id", "delivery_tag"}
    assert {k: v for k, v in ours["properties"].items() if k not in unique} == {
        k: v for k, v in celerys["properties"].items() if k not in unique
    }
    assert ours["properties"]["delivery_info"] == {"exchange": "", "routing_key": queue}
    if countdown is None:
        assert ours["headers"]["eta"] is celerys["headers"]["eta"] is None
    else:
        etas = [datetime.fromisoformat(entry["headers"]["eta"]) for entry in (celerys, ours)]
        assert abs(etas[1] - etas[0]) < timedelta(seconds=5)


def test_send_job_takes_the_short_way_only_where_it_writes_the_same(private_queue, monkeypatch):
    queue, client = private_queue
    writer = RedisJobWriter.for_app(app)
    written: list[str] = []
    monkeypatch.setattr(writer, "send", lambda name, args, countdown=None: written.append(name))

    send_job(ALLOCATE, (1,))
    assert written == [ALLOCATE] and client.llen(queue) == 0

    # a task with options of its own goes through Celery
    assert not writer.covers(expiring.name)
    # so does a task whose apply_async was replaced (the tests that record jobs do this)
    recorded: list[tuple] = []
    monkeypatch.setattr(allocate_order, "apply_async", lambda args=None, countdown=None, **kw: recorded.append(args))
    send_job(ALLOCATE, (2,))
    assert recorded == [(2,)] and written == [ALLOCATE]
    monkeypatch.undo()

    # and everything while jobs run eagerly
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        assert not writer.covers(ALLOCATE)
    finally:
        app.conf.task_always_eager = eager
    # a task this process has not imported is sent by name with no options, the short way too
    assert writer.covers("not.imported.here")


def test_brokers_it_does_not_cover_are_left_to_celery():
    filesystem = Celery("t", broker="filesystem://", set_as_current=False)
    assert RedisJobWriter.for_app(filesystem) is None
    compressed = Celery("t", broker=django_settings.REDIS_URL, set_as_current=False)
    compressed.conf.task_compression = "gzip"
    assert not RedisJobWriter.app_fits(compressed)
    routed = Celery("t", broker=django_settings.REDIS_URL, set_as_current=False)
    routed.conf.task_routes = {ALLOCATE: {"queue": "elsewhere"}}
    assert not RedisJobWriter.app_fits(routed)


@pytest.mark.parametrize("error", [redis.ConnectionError("connection refused"), redis.TimeoutError("timed out")])
def test_a_lost_redis_connection_falls_back_to_celerys_publish(private_queue, monkeypatch, error):
    queue, client = private_queue
    writer = RedisJobWriter.for_app(app)

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(writer.connection, "execute", refuse)
    writer.send(ALLOCATE, (7,))
    entry = pop_entry(client, queue)  # written by apply_async, on its own connection
    assert json.loads(base64.b64decode(entry["body"]))[0] == [7]
