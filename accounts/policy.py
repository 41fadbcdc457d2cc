"""Who must pass a one-time password before using the admin.

A user must when any of these holds:
- they belong to a group named in `OMS_2FA_REQUIRED_GROUPS` (finance and supervisors by default);
- they are a superuser and `OMS_2FA_REQUIRE_SUPERUSERS` is on (the default outside `make run`);
- they enrolled a device of their own accord: a second factor that is never asked for protects nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django_otp.plugins.otp_totp.models import TOTPDevice


def otp_required_by_role(user) -> bool:
    if user.is_superuser and settings.OMS_2FA_REQUIRE_SUPERUSERS:
        return True
    groups = settings.OMS_2FA_REQUIRED_GROUPS
    return bool(groups) and user.groups.filter(name__in=groups).exists()


def confirmed_totp_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def otp_required(user) -> bool:
    """One query whatever the answer: the middleware asks this on every request of an unverified user."""
    if user.is_superuser and settings.OMS_2FA_REQUIRE_SUPERUSERS:
        return True
    required = Q(totpdevice__confirmed=True)
    if settings.OMS_2FA_REQUIRED_GROUPS:
        required |= Q(groups__name__in=settings.OMS_2FA_REQUIRED_GROUPS)
    return get_user_model().objects.filter(required, pk=user.pk).exists()
