"""Gateway adapters and the one place that decides which gateway a channel talks to.

Settings are read at call time, never at import, so `override_settings` in tests and a changed
environment both take effect. A channel with real credentials (ALIPAY_APP_ID / WECHATPAY_MCHID)
talks to its gateway. One without them talks to the built-in sandbox while OMS_SANDBOX_ENABLED is
on, and to nothing otherwise: get_gateway() raises GatewayNotConfigured (409), so no payment
starts and no notify verifies. The adapter and its verification are the same code either way.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..errors import GatewayNotConfigured
from .alipay import AlipayConfig, AlipayGateway
from .base import (
    CloseResult,
    Gateway,
    GatewayError,
    NotifyMessage,
    PayRequest,
    RefundResult,
    TradeState,
    VerificationError,
)
from .wechatpay import WechatPayConfig, WechatPayGateway

__all__ = [
    "AlipayConfig",
    "AlipayGateway",
    "CloseResult",
    "Gateway",
    "GatewayError",
    "NotifyMessage",
    "PayRequest",
    "RefundResult",
    "TradeState",
    "VerificationError",
    "WechatPayConfig",
    "WechatPayGateway",
    "get_gateway",
    "has_credentials",
    "is_configured",
    "is_sandbox",
    "notify_url",
    "sandbox_enabled",
]

CHANNELS = ("alipay", "wechatpay")


# The setting whose presence means "a real merchant is configured" for each channel.
CREDENTIAL_SETTINGS = {"alipay": "ALIPAY_APP_ID", "wechatpay": "WECHATPAY_MCHID"}


def has_credentials(channel: str) -> bool:
    """True when a real merchant is configured for `channel` (ALIPAY_APP_ID / WECHATPAY_MCHID set)."""
    if channel not in CREDENTIAL_SETTINGS:
        raise ValueError(f"unknown payment gateway channel {channel!r}")
    return bool(getattr(settings, CREDENTIAL_SETTINGS[channel]))


def sandbox_enabled() -> bool:
    """The built-in sandbox gateway is switched on (OMS_SANDBOX_ENABLED): its URLs and jobs run."""
    return bool(settings.OMS_SANDBOX_ENABLED)


def is_sandbox(channel: str) -> bool:
    """True when `channel` is served by the built-in sandbox: it is enabled and no real merchant is set."""
    return not has_credentials(channel) and sandbox_enabled()


def is_configured(channel: str) -> bool:
    """True when `channel` has somewhere to send payments: its real gateway or the sandbox."""
    return has_credentials(channel) or sandbox_enabled()


def notify_url(channel: str) -> str:
    """Where the gateway must post notifies for `channel`: OMS_SITE_URL + /payments/notify/<channel>/."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown payment gateway channel {channel!r}")
    return f"{settings.OMS_SITE_URL.rstrip('/')}/payments/notify/{channel}/"


def sandbox_base_url() -> str:
    return f"{settings.OMS_SITE_URL.rstrip('/')}/payments/sandbox"


# path -> ((mtime_ns, size, inode) when read, its text): every notify builds its gateway, and
# with it reads the gateway's public key and our private key.
_key_files: dict[str, tuple[tuple[int, int, int], str]] = {}
# A file changed this recently is read every time: a second write within the file system's
# timestamp granularity (milliseconds) could leave its mtime and size as they were.
_SETTLED_NS = 2_000_000_000


def _read_key(setting_name: str) -> str:
    """The key file `setting_name` names, read again only when the file changed (a key rotated
    in place or a new file moved over it), so a notify costs one stat per key, not a read."""
    path = getattr(settings, setting_name)
    if not path:
        raise ImproperlyConfigured(f"{setting_name} must name a key file")
    try:
        status = os.stat(path)
        version = (status.st_mtime_ns, status.st_size, status.st_ino)
        cached = _key_files.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        text = Path(path).read_text(encoding="ascii")
    except OSError as exc:
        raise ImproperlyConfigured(f"{setting_name}: cannot read {path}: {exc}") from exc
    if time.time_ns() - status.st_mtime_ns > _SETTLED_NS:
        _key_files[path] = (version, text)
    return text


def _require(*setting_names: str) -> None:
    missing = [name for name in setting_names if not getattr(settings, name)]
    if missing:
        raise ImproperlyConfigured(f"missing settings: {', '.join(missing)}")


def get_gateway(channel: str) -> Gateway:
    """The adapter for `channel` ("alipay" or "wechatpay"), configured from settings right now.

    Raises GatewayNotConfigured when the channel has no credentials and the sandbox is off.
    """
    # Imported here: payments.sandbox.keys imports the adapters from this package.
    from payments.sandbox import keys as sandbox_keys

    if channel in CHANNELS and not is_configured(channel):
        raise GatewayNotConfigured(channel=channel)
    if channel == "alipay":
        url = notify_url("alipay")
        if is_sandbox("alipay"):
            return AlipayGateway(
                sandbox_keys.alipay_merchant_config(
                    gateway_url=f"{sandbox_base_url()}/alipay/gateway.do", notify_url=url
                )
            )
        _require("ALIPAY_SELLER_ID", "ALIPAY_GATEWAY_URL")
        return AlipayGateway(
            AlipayConfig(
                app_id=settings.ALIPAY_APP_ID,
                seller_id=settings.ALIPAY_SELLER_ID,
                gateway_url=settings.ALIPAY_GATEWAY_URL,
                alipay_public_key_pem=_read_key("ALIPAY_PUBLIC_KEY_PATH"),
                merchant_private_key_pem=_read_key("ALIPAY_PRIVATE_KEY_PATH"),
                notify_url=url,
            )
        )
    if channel == "wechatpay":
        url = notify_url("wechatpay")
        if is_sandbox("wechatpay"):
            return WechatPayGateway(
                sandbox_keys.wechatpay_merchant_config(api_base=f"{sandbox_base_url()}/wechatpay", notify_url=url)
            )
        _require("WECHATPAY_APPID", "WECHATPAY_APIV3_KEY", "WECHATPAY_PUBLIC_KEY_ID", "WECHATPAY_CERT_SERIAL")
        if len(settings.WECHATPAY_APIV3_KEY.encode("utf-8")) != 32:
            raise ImproperlyConfigured("WECHATPAY_APIV3_KEY must be 32 bytes")
        return WechatPayGateway(
            WechatPayConfig(
                mchid=settings.WECHATPAY_MCHID,
                appid=settings.WECHATPAY_APPID,
                apiv3_key=settings.WECHATPAY_APIV3_KEY,
                platform_public_key_pem=_read_key("WECHATPAY_PUBLIC_KEY_PATH"),
                platform_public_key_id=settings.WECHATPAY_PUBLIC_KEY_ID,
                merchant_private_key_pem=_read_key("WECHATPAY_PRIVATE_KEY_PATH"),
                merchant_cert_serial=settings.WECHATPAY_CERT_SERIAL,
                api_base=settings.WECHATPAY_API_BASE,
                notify_url=url,
            )
        )
    raise ValueError(f"unknown payment gateway channel {channel!r}")
