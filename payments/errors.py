"""The payments app's domain errors (codes are part of the API)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from oms.errors import DomainError

from .models import Channel


class PaymentDeadlinePassed(DomainError):
    code = "payment_deadline_passed"
    status_code = 409
    default_message = gettext_lazy("订单已超过付款截止时间")


class GatewayUnavailable(DomainError):
    code = "gateway_unavailable"
    status_code = 502
    default_message = gettext_lazy("支付渠道暂时不可用，请稍后重试")


class RefundNotAllowed(DomainError):
    code = "refund_not_allowed"
    status_code = 409
    default_message = gettext_lazy("退款金额超过可退金额")


class GatewayNotConfigured(DomainError):
    """A channel with no merchant credentials while the sandbox gateway is off: nowhere to pay."""

    code = "gateway_not_configured"
    status_code = 409
    default_message = gettext_lazy("该支付渠道尚未开通，暂时无法在线支付")

    def __init__(self, *, channel: str) -> None:
        label = Channel(channel).label if channel in Channel.values else channel
        super().__init__(
            _("支付渠道「%(channel)s」尚未配置商户参数，暂时无法在线支付") % {"channel": label},
            details={"channel": channel},
        )
        self.channel = channel
