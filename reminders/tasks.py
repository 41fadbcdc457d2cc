"""Thin Celery tasks. Celery beat runs send_due_reminders every minute (see orders migration 0004)."""

from __future__ import annotations

from celery import shared_task

from .services import reminders_send_due


@shared_task
def send_due_reminders() -> dict[str, int]:
    """Schedule due reminders, then claim and send them; safe when two runs overlap."""
    return reminders_send_due().as_dict()
