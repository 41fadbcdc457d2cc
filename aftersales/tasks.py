"""Thin Celery task for the after-sales deadlines."""

from __future__ import annotations

from celery import shared_task

from .services import aftersales_run_clock


@shared_task(name="aftersales.tasks.run_aftersales_clock")
def run_aftersales_clock() -> dict:
    return vars(aftersales_run_clock())
