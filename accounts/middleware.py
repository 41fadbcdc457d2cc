"""Users who must use a second factor reach nothing but enrolment and verification until they do.

Sits after django_otp's OTPMiddleware, which gives `request.user.is_verified()`.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse

from .policy import confirmed_totp_device, otp_required

# Pages a logged-in but unverified user may still open: the 2FA pages themselves, and the way out.
OPEN_URL_NAMES = ("accounts:otp-setup", "accounts:otp-verify", "admin:logout", "admin:login")


class TwoFactorRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            # No session, so no logged-in user: the storefront API and the gateways' notifies
            # pass without loading a session and a user only to find them anonymous.
            return self.get_response(request)
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not user.is_verified()
            and request.path not in {reverse(name) for name in OPEN_URL_NAMES}
            and otp_required(user)
        ):
            target = "accounts:otp-verify" if confirmed_totp_device(user) else "accounts:otp-setup"
            return redirect(f"{reverse(target)}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)
