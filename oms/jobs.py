"""Queueing Celery jobs from services without importing the task modules.

Tasks are the thin top layer that calls services, so a service cannot import its task
without a cycle. It names the task instead; the task module registers under that same
name. The job is sent only after the transaction commits, so a rollback queues nothing,
and the row the job works on (a refund, a notify) is already there to be re-delivered if
the broker loses the message.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction


def enqueue_on_commit(task_name: str, *args, countdown: int | None = None) -> None:
    def send() -> None:
        current_app.signature(task_name, args=args).apply_async(countdown=countdown)

    transaction.on_commit(send)
