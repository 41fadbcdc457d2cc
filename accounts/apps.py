from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    """Staff logins: lockout (django-axes), idle sessions, TOTP two-factor (django-otp)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = _("登录与两步验证")
