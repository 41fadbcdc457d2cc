"""Money in and money out, one module per family of verbs:

- checkout: starting a payment (payment_start);
- notify: gateway notifications and the late-payment policy (payment_receive_notification);
- sync: the gateway check, 补单 (payment_sync);
- refunds: request, approve, retry, execute, finish (refund_*);
- offline: bank transfers and cash on delivery (bank_transfer_record, cod_collect);
- cases: the finance review queue (case_open, cases_assign, case_review_save).

Every function that changes a row runs in a transaction, locks the order before the payment
or refund (always in that order), and writes the order's timeline. Gateway calls happen
outside transactions; their results are applied in a fresh one, under lock, so a retry or a
concurrent notify cannot count money twice. Read queries live in payments.selectors.
"""

from ..errors import GatewayNotConfigured, GatewayUnavailable, PaymentDeadlinePassed, RefundNotAllowed
from ..selectors import payments_stale, refundable_amount, refunds_stuck
from .cases import case_open, case_review_save, cases_assign
from .checkout import payment_start
from .notify import MAX_NOTIFY_BYTES, NotifyResult, payment_receive_notification
from .offline import ORDER_NO_IN_TEXT, bank_transfer_record, cod_collect
from .refunds import (
    refund_approve,
    refund_execute,
    refund_mark_failed,
    refund_mark_paid_by_hand,
    refund_mark_succeeded,
    refund_request,
    refund_request_full,
    refund_retry,
)
from .sync import SyncReport, payment_sync

__all__ = [
    "MAX_NOTIFY_BYTES",
    "ORDER_NO_IN_TEXT",
    "GatewayNotConfigured",
    "GatewayUnavailable",
    "NotifyResult",
    "PaymentDeadlinePassed",
    "RefundNotAllowed",
    "SyncReport",
    "bank_transfer_record",
    "case_open",
    "case_review_save",
    "cases_assign",
    "cod_collect",
    "payment_receive_notification",
    "payment_start",
    "payment_sync",
    "payments_stale",
    "refund_approve",
    "refund_execute",
    "refund_mark_failed",
    "refund_mark_paid_by_hand",
    "refund_mark_succeeded",
    "refund_request",
    "refund_request_full",
    "refund_retry",
    "refundable_amount",
    "refunds_stuck",
]
