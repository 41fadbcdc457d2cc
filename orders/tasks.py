"""Thin Celery tasks for the order clock; each calls one service and is safe to overlap."""

from celery import shared_task

from workflows.expiry import order_close_expired
from workflows.receipt import order_confirm_receipt_due


@shared_task
def close_expired_orders() -> int:
    return order_close_expired().closed


@shared_task
def confirm_receipt_overdue() -> int:
    return order_confirm_receipt_due()
