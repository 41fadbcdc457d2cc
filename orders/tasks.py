"""Thin Celery tasks for the order clock; each calls one service and is safe to overlap."""

from celery import shared_task

from workflows.expiry import order_close_expired

from .services import order_confirm_receipt_overdue


@shared_task
def close_expired_orders() -> int:
    return order_close_expired().closed


@shared_task
def confirm_receipt_overdue() -> int:
    return order_confirm_receipt_overdue()
