"""Enrolling and checking TOTP devices. The views call these; nothing else writes devices."""

from __future__ import annotations

import django_otp
from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from .policy import confirmed_totp_device

DEVICE_NAME = "OMS"


def totp_device_start(*, user) -> TOTPDevice:
    """The device being enrolled: the user's unconfirmed one (same key on every reload), or a new one.

    An unconfirmed device is never accepted at login; it becomes a factor only once the
    user has proved, with a code, that their authenticator app holds its key.
    """
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("pk").first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    return device


def totp_device_confirm(*, request: HttpRequest, device: TOTPDevice, token: str) -> bool:
    """Confirm the device with a first correct code, and count this session as verified."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=request.user)
        if not device.verify_token(token):
            return False
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    django_otp.login(request, device)
    return True


def otp_verify(*, request: HttpRequest, token: str) -> bool:
    """Check a code against the user's confirmed device; on success the session is verified.

    django-otp throttles the device after each wrong code (1 s, 2 s, 4 s, ...), and a code
    is accepted only once.
    """
    device = confirmed_totp_device(request.user)
    if device is None:
        return False
    verified = django_otp.verify_token(request.user, device.persistent_id, token)
    if verified is None:
        return False
    django_otp.login(request, verified)
    return True
