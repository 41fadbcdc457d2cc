"""The one small interface every channel implements: `send(message) -> provider message id`.

- email: Django's email backend (SMTP in production, locmem in tests);
- SMS: an SmsProvider (reminders.sms): the logging provider by default, or Aliyun;
- in-app: nothing leaves the building; the Reminder row is the stored message, which the
  storefront reads at GET /api/v1/orders/{order_no}/messages/.

A channel raises ChannelError when a message did not go out. `retryable=False` means trying
again cannot help (bad number, not configured) or might deliver twice (no answer after the
request was sent), so the reminder is marked failed instead of retried.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field
from email.utils import make_msgid
from typing import Protocol
from urllib.parse import urlparse

from django.core.mail import EmailMessage

from . import conf
from .models import Channel


class ChannelError(Exception):
    def __init__(self, message: str, *, code: str = "", retryable: bool = True) -> None:
        self.code = code
        self.retryable = retryable
        super().__init__(message)


@dataclass(frozen=True)
class OutboundMessage:
    reference: str  # our id for the message ("R123"), e.g. Aliyun OutId
    recipient: str  # mobile, e-mail address, or "" for in-app
    subject: str
    text: str
    params: dict[str, str] = field(default_factory=dict)  # variables, for provider-side templates
    sms_template_code: str = ""


class MessageChannel(Protocol):
    def send(self, message: OutboundMessage) -> str: ...


class EmailChannel:
    def send(self, message: OutboundMessage) -> str:
        domain = urlparse(conf.site_url()).hostname or "oms.local"
        message_id = make_msgid(domain=domain)
        email = EmailMessage(
            subject=message.subject,
            body=message.text,
            from_email=conf.email_from(),
            to=[message.recipient],
            headers={"Message-ID": message_id},
        )
        try:
            email.send(fail_silently=False)
        except smtplib.SMTPRecipientsRefused as err:
            raise ChannelError(f"收件地址被拒绝：{err}", code="recipient_refused", retryable=False) from err
        except (smtplib.SMTPException, OSError) as err:
            raise ChannelError(f"邮件发送失败：{err}", code="smtp") from err
        return message_id


class SmsChannel:
    def __init__(self, provider) -> None:
        self.provider = provider

    def send(self, message: OutboundMessage) -> str:
        return self.provider.send(
            mobile=message.recipient,
            text=message.text,
            params=message.params,
            template_code=message.sms_template_code,
            reference=message.reference,
        )


class InAppChannel:
    def send(self, message: OutboundMessage) -> str:
        return f"in-app:{message.reference}"


def channel_for(channel: str) -> MessageChannel:
    from .sms import sms_provider

    if channel == Channel.SMS:
        return SmsChannel(sms_provider())
    if channel == Channel.EMAIL:
        return EmailChannel()
    if channel == Channel.IN_APP:
        return InAppChannel()
    raise ChannelError(f"unknown channel {channel!r}", code="unknown_channel", retryable=False)
