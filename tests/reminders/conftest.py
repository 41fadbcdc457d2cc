from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from orders.models import Order
from reminders.models import ReminderRule
from reminders.services import reminder_rules_install_builtin

from .doubles import RecordingSmsProvider

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A moment in 2026, Shanghai time."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=SHANGHAI)


@pytest.fixture
def sms(settings):
    """Every SMS goes to RecordingSmsProvider.sent; quiet hours, caps and spacing at their defaults."""
    settings.OMS_SMS_PROVIDER = "tests.reminders.doubles.RecordingSmsProvider"
    settings.OMS_SITE_URL = "https://shop.example.com"
    RecordingSmsProvider.reset()
    yield RecordingSmsProvider
    RecordingSmsProvider.reset()


@pytest.fixture
def rules(db) -> dict[str, ReminderRule]:
    """The built-in rules (a transactional test elsewhere may have flushed the migration's rows)."""
    reminder_rules_install_builtin()
    return {rule.code: rule for rule in ReminderRule.objects.exclude(code=None)}


@pytest.fixture
def only_rules(rules):
    """Keep just the named built-in rules active, so a test sees only the messages it is about."""

    def keep(*codes: str) -> dict[str, ReminderRule]:
        ReminderRule.objects.exclude(code__in=codes).update(active=False)
        return {code: rules[code] for code in codes}

    return keep


@pytest.fixture
def clock(time_machine):
    """clock(moment) moves time there and stops it; returns the moment."""

    def move(moment: datetime) -> datetime:
        time_machine.move_to(moment, tick=False)
        return moment

    return move


@pytest.fixture
def make_order(create_order):
    """Create an order through the storefront API and return the model instance."""

    def make(**overrides) -> Order:
        return Order.objects.get(order_no=create_order(**overrides)["order_no"])

    return make
