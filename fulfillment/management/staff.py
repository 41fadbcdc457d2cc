"""The acting staff user of a management command (--user)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from orders.events import Actor


def staff_actor(username: str) -> Actor:
    user = get_user_model().objects.filter(username=username, is_active=True, is_staff=True).first()
    if user is None:
        raise CommandError(f"No active staff user {username!r}.")
    return Actor.staff(user)
