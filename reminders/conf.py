"""Every setting of the reminders app, read at call time so tests (and the admin's
`settings` overrides) take effect at once. oms/settings/base.py maps each one to an
environment variable of the same name; the defaults here apply when it does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _get(name: str, default):
    return getattr(settings, name, default)


def quiet_hours() -> tuple[time, time] | None:
    """OMS_REMINDER_QUIET_HOURS, "22:00-08:00" (local time, TIME_ZONE); empty turns quiet hours off."""
    spec = str(_get("OMS_REMINDER_QUIET_HOURS", "22:00-08:00")).strip()
    if not spec:
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in spec.split("-"))
    except ValueError as err:
        raise ImproperlyConfigured(f"OMS_REMINDER_QUIET_HOURS must look like 22:00-08:00, not {spec!r}") from err
    return (start, end) if start != end else None


def order_cap() -> int:
    """催付 messages per order, automatic and manual together."""
    return int(_get("OMS_REMINDER_ORDER_CAP", 2))


def daily_cap() -> int:
    """催付 messages per customer (mobile number) per calendar day, automatic and manual together."""
    return int(_get("OMS_REMINDER_DAILY_CAP", 3))


def min_gap() -> timedelta:
    """Least time between two 催付 messages for the same order; a later one waits."""
    return timedelta(minutes=int(_get("OMS_REMINDER_MIN_GAP_MINUTES", 60)))


def lookback() -> timedelta:
    """Only orders created this recently are scanned, which keeps the scheduling query cheap."""
    return timedelta(hours=int(_get("OMS_REMINDER_LOOKBACK_HOURS", 72)))


def max_lateness() -> timedelta:
    """A reminder whose due time passed longer ago than this (the job was down) is not created."""
    return timedelta(minutes=int(_get("OMS_REMINDER_MAX_LATENESS_MINUTES", 360)))


def schedule_limit() -> int:
    """Reminder rows created per rule per run."""
    return int(_get("OMS_REMINDER_SCHEDULE_LIMIT", 1000))


def send_batch_size() -> int:
    return int(_get("OMS_REMINDER_SEND_BATCH_SIZE", 100))


def send_max_batches() -> int:
    return int(_get("OMS_REMINDER_SEND_MAX_BATCHES", 10))


def max_attempts() -> int:
    return int(_get("OMS_REMINDER_MAX_ATTEMPTS", 3))


def retry_delay(attempts: int) -> timedelta:
    """Back-off after the `attempts`-th failed try: base, 2 x base, 4 x base, ..."""
    base = int(_get("OMS_REMINDER_RETRY_BASE_SECONDS", 60))
    return timedelta(seconds=base * 2 ** max(attempts - 1, 0))


def sending_lease() -> timedelta:
    """A claim older than this whose send never reported back is marked failed (result unknown)."""
    return timedelta(minutes=int(_get("OMS_REMINDER_SENDING_LEASE_MINUTES", 10)))


def site_url() -> str:
    return str(_get("OMS_SITE_URL", "http://127.0.0.1:8000")).rstrip("/")


def pay_link(order_no: str) -> str:
    """OMS_PAY_LINK_TEMPLATE with {site} (OMS_SITE_URL) and {order_no} filled in."""
    template = _get("OMS_PAY_LINK_TEMPLATE", "{site}/payments/pay/{order_no}/")
    return template.format(site=site_url(), order_no=order_no)


def email_from() -> str:
    return _get("OMS_REMINDER_EMAIL_FROM", "") or settings.DEFAULT_FROM_EMAIL


def sms_provider_name() -> str:
    """Which SMS provider: logging (the default: log, send nothing), aliyun, or a provider class's dotted path."""
    return str(_get("OMS_SMS_PROVIDER", "logging"))


def sms_http_timeout() -> float:
    return float(_get("OMS_SMS_HTTP_TIMEOUT", 5.0))


@dataclass(frozen=True)
class AliyunSmsConfig:
    access_key_id: str
    access_key_secret: str
    sign_name: str
    template_code: str
    endpoint: str
    region_id: str


def aliyun_sms() -> AliyunSmsConfig:
    return AliyunSmsConfig(
        access_key_id=_get("ALIYUN_SMS_ACCESS_KEY_ID", ""),
        access_key_secret=_get("ALIYUN_SMS_ACCESS_KEY_SECRET", ""),
        sign_name=_get("ALIYUN_SMS_SIGN_NAME", ""),
        template_code=_get("ALIYUN_SMS_TEMPLATE_CODE", ""),
        endpoint=_get("ALIYUN_SMS_ENDPOINT", "https://dysmsapi.aliyuncs.com"),
        region_id=_get("ALIYUN_SMS_REGION_ID", "cn-hangzhou"),
    )
