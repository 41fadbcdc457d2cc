"""The payments app's domain errors (codes are part of the API)."""

from __future__ import annotations

from oms.errors import DomainError


class PaymentDeadlinePassed(DomainError):
    code = "payment_deadline_passed"
    status_code = 409
    default_message = "订单已超过付款截止时间"


class GatewayUnavailable(DomainError):
    code = "gateway_unavailable"
    status_code = 502
    default_message = "支付渠道暂时不可用，请稍后重试"


class RefundNotAllowed(DomainError):
    code = "refund_not_allowed"
    status_code = 409
    default_message = "退款金额超过可退金额"
