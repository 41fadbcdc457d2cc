"""Thin Celery tasks for fulfillment; each loads rows by id and calls one service."""

from __future__ import annotations

from celery import shared_task

from orders.models import Order

from .services import order_allocate, orders_allocate_due


@shared_task(name="fulfillment.tasks.allocate_order")
def allocate_order(order_id: int) -> int:
    order = Order.objects.filter(pk=order_id).first()
    return len(order_allocate(order=order)) if order is not None else 0


@shared_task(name="fulfillment.tasks.allocate_pending_orders")
def allocate_pending_orders() -> int:
    return orders_allocate_due()
