"""Celery tasks of the sandbox gateway: deliver the notify outbox, like the real platforms do.

With the sandbox off (OMS_SANDBOX_ENABLED, production's default) both do nothing: its beat
schedule row may stay in the database, and nothing is posted.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from payments.gateways import sandbox_enabled

from .services import sandbox_notifies_overdue, sandbox_notify_deliver


@shared_task(ignore_result=True)
def sandbox_deliver_notify(notify_id: int) -> None:
    """Post one outbox notify; on failure schedule the next attempt on the gateway's real schedule."""
    if not sandbox_enabled():
        return
    countdown = sandbox_notify_deliver(notify_id=notify_id)
    if countdown is not None:
        sandbox_deliver_notify.apply_async(args=[notify_id], countdown=countdown)


@shared_task(ignore_result=True)
def sandbox_redeliver_overdue_notifies() -> int:
    """Re-queue notifies whose delivery task was lost (for example during a broker outage)."""
    if not sandbox_enabled():
        return 0
    overdue = sandbox_notifies_overdue(now=timezone.now())
    for notify_id in overdue:
        sandbox_deliver_notify.delay(notify_id)
    return len(overdue)
