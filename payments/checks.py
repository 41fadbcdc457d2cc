"""System checks for the payment gateways, run by `manage.py check --deploy`.

A channel needs somewhere to send payments: its own merchant credentials, or the built-in sandbox
knowingly switched on (a staging site). Production with neither is an error, so a deploy without
credentials stops at the check instead of answering 409 gateway_not_configured to every customer,
and nobody "fixes" it by pointing real customers at a cashier that needs no money.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, register

from .gateways import CHANNELS, CREDENTIAL_SETTINGS, has_credentials, sandbox_enabled


@register(Tags.security, deploy=True)
def check_gateway_channels(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for channel in CHANNELS:
        if channel not in settings.OMS_PAYMENT_CHANNELS:
            continue  # a shop that takes only Alipay needs no WeChat Pay merchant account
        if has_credentials(channel):
            continue
        setting = CREDENTIAL_SETTINGS[channel]
        prefix = setting.split("_", 1)[0]
        if sandbox_enabled():
            messages.append(
                Info(
                    f"Payment channel {channel!r} is served by the built-in sandbox gateway ({setting} is "
                    "empty and OMS_SANDBOX_ENABLED is on): its cashier at /payments/sandbox/ marks orders "
                    "paid without any money.",
                    hint="Fine for a staging site. In production set the channel's credentials and leave "
                    "OMS_SANDBOX_ENABLED off.",
                    id="oms.I001",
                )
            )
        else:
            messages.append(
                Error(
                    f"Payment channel {channel!r} has no merchant credentials ({setting} is empty) and the "
                    "built-in sandbox gateway is off (OMS_SANDBOX_ENABLED is false): starting a payment on it answers "
                    "409 gateway_not_configured.",
                    hint=f"Set {setting} and the other {prefix}_* settings. OMS_SANDBOX_ENABLED=true is for a "
                    "staging site only: the sandbox's cashier lets anyone mark an order paid.",
                    id="oms.E001",
                )
            )
    return messages
