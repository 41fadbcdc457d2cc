"""Queueing Celery jobs from services without importing the task modules.

Tasks are the thin top layer that calls services, so a service cannot import its task
without a cycle. It names the task instead; the task module registers under that same
name. The job is sent only after the transaction commits, so a rollback queues nothing,
and the row the job works on (a refund, a notify) is already there to be re-delivered if
the broker loses the message.

On a Redis broker a job is written the short way (`RedisJobWriter`): Celery builds the task
message, as for `apply_async`, and one `LPUSH` puts it where kombu's Redis transport would.
`apply_async` spent 0.44 ms of CPU per job on this path, most of it in kombu building a Redis
client and re-checking the queue's declaration for every message; every paid order pays it
(docs/performance.md). Anything the short way does not cover goes through `apply_async`.
"""

from __future__ import annotations

import base64
import uuid
from functools import partial
from typing import Any

import redis
from celery import Celery, Task, current_app, signals
from celery.utils.saferepr import saferepr
from django.db import transaction
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as json_dumps

from oms.redis_kept import KeptConnection


def enqueue_on_commit(task_name: str, *args, countdown: int | None = None) -> None:
    transaction.on_commit(partial(send_job, task_name, args, countdown))


def send_job(task_name: str, args: tuple, countdown: int | None = None) -> None:
    """Send one job now: the short way where `RedisJobWriter` covers it, else `apply_async`."""
    app = current_app._get_current_object()
    writer = RedisJobWriter.for_app(app)
    if writer is None or not writer.covers(task_name):
        app.signature(task_name, args=args).apply_async(countdown=countdown)
        return
    writer.send(task_name, args, countdown)


class RedisJobWriter:
    """Writes Celery jobs into kombu's Redis transport with one `LPUSH` on a kept connection.

    What lands in Redis is what `apply_async` writes there: the message is Celery's own
    (`AMQP.as_task_v2`, protocol 2) and the envelope is the one kombu's virtual transport
    wraps it in (a test compares the two field by field, and a real worker runs the jobs).
    It covers a job only when nothing would make `apply_async` write anything else: a JSON
    broker with no routes, compression, key prefix or TLS options, no publish signal receivers, no task
    options (queue, priority, limits, expiry) or `apply_async` of its own, and no current worker
    task to record as parent.
    """

    _by_app: dict[int, RedisJobWriter | None] = {}

    def __init__(self, app: Celery) -> None:
        self.app = app
        timeout = app.conf.broker_connection_timeout  # Celery's own publish gives up connecting after it
        self.connection = KeptConnection(
            redis.ConnectionPool.from_url(app.conf.broker_url, socket_connect_timeout=timeout, socket_timeout=timeout)
        )
        self.repr_maxlevels = app.conf.task_repr_maxlevels  # as_task_v2 would read it twice per job
        self._options_unset: dict[str, bool] = {}

    @classmethod
    def for_app(cls, app: Celery) -> RedisJobWriter | None:
        key = id(app)
        if key not in cls._by_app:
            cls._by_app[key] = cls(app) if cls.app_fits(app) else None
        return cls._by_app[key]

    @staticmethod
    def app_fits(app: Celery) -> bool:
        conf = app.conf
        return (
            str(conf.broker_url or "").startswith(("redis://", "rediss://"))
            and not conf.task_always_eager
            and not conf.task_routes
            and conf.task_serializer == "json"
            and not conf.task_compression
            and conf.task_protocol == 2
            and not conf.task_send_sent_event
            and not conf.broker_transport_options
            and not conf.broker_use_ssl
        )

    def covers(self, task_name: str) -> bool:
        if signals.before_task_publish.receivers or signals.after_task_publish.receivers:
            return False
        if self.app.conf.task_always_eager or self.app.current_worker_task is not None:
            return False  # eager when asked to be; a job sent by a job records its parent
        task = self.app.tasks.get(task_name)
        if task is None:
            return True  # not imported in this process: apply_async sends it by name, with no options
        own_way = ("apply_async" in vars(task)) or any(
            getattr(type(task), name) is not getattr(Task, name) for name in ("apply_async", "shadow_name")
        )
        if own_way or task._dump_pydantic_arguments is not None:
            return False  # a task that sends itself its own way is left to do so
        if task_name not in self._options_unset:
            self._options_unset[task_name] = all(
                value is None or (option, value) == ("serializer", "json")
                for option, value in task._get_exec_options().items()
            )
        return self._options_unset[task_name]

    def envelope(self, task_name: str, args: tuple, countdown: int | None, queue: str) -> dict[str, Any]:
        """The Redis list entry for one job, as kombu's Redis transport writes it."""
        app = self.app
        task = app.tasks.get(task_name)
        if task is not None and task.typing:
            task.__header__(*args)  # a wrong number of arguments fails here, as in apply_async
        task_id = str(uuid.uuid4())
        message = app.amqp.as_task_v2(
            task_id,
            task_name,
            args,
            {},
            countdown,
            None,
            reply_to=app.thread_oid,
            ignore_result=None if task is None else task.ignore_result,
            argsrepr=saferepr(args, app.amqp.argsrepr_maxsize, maxlevels=self.repr_maxlevels),
            kwargsrepr="{}",
        )
        content_type, content_encoding, body = serialize(message.body, serializer="json")
        return {
            "body": base64.b64encode(body.encode("utf-8")).decode("ascii"),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": message.headers,
            "properties": {
                **message.properties,
                "delivery_mode": 2,  # persistent, as Celery's default
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }

    def send(self, task_name: str, args: tuple, countdown: int | None = None) -> None:
        queue = self.app.conf.task_default_queue  # read each time: tests point it at their worker
        entry = json_dumps(self.envelope(task_name, args, countdown, queue))
        try:
            self.connection.execute("LPUSH", queue, entry)
        except (redis.ConnectionError, redis.TimeoutError):
            # Let Celery's own publish try again, with its retry policy and error reporting (a
            # job's task runs at least once anyway: tasks are acknowledged late).
            self.app.signature(task_name, args=args).apply_async(countdown=countdown)
