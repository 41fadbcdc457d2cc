"""Test doubles for SMS providers, selected through OMS_SMS_PROVIDER's dotted path."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from reminders.channels import ChannelError


@dataclass(frozen=True)
class SentSms:
    mobile: str
    text: str
    params: Mapping[str, str]
    template_code: str
    reference: str


class RecordingSmsProvider:
    """Records every send. `failures` is a list of ChannelErrors raised by the next sends, in order."""

    sent: list[SentSms] = []
    failures: list[ChannelError] = []
    delay: float = 0.0
    before_send = None  # a callable run (once) inside the first send: "while this message is on the wire"
    lock = threading.Lock()

    @classmethod
    def reset(cls) -> None:
        cls.sent, cls.failures, cls.delay, cls.before_send = [], [], 0.0, None

    def send(self, *, mobile: str, text: str, params: Mapping[str, str], template_code: str, reference: str) -> str:
        hook, type(self).before_send = type(self).before_send, None
        if hook is not None:
            hook()
        if self.delay:
            time.sleep(self.delay)  # widen the window in which two runs overlap
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(SentSms(mobile, text, dict(params), template_code, reference))
            return f"fake-{len(self.sent)}"
