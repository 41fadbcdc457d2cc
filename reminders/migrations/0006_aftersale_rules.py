"""The built-in after-sales messages: 售后已同意, 售后退货地址 (with the return address), 售后被拒绝
(with the reason) and 售后已退款, by SMS. Matched by code; staff may edit or deactivate them."""

from django.db import migrations

from reminders.defaults import AFTERSALE_RULES as NOTICE_RULES


def create(apps, schema_editor):
    ReminderRule = apps.get_model("reminders", "ReminderRule")
    for spec in NOTICE_RULES:
        defaults = {key: value for key, value in spec.items() if key != "code"}
        ReminderRule.objects.get_or_create(code=spec["code"], defaults=defaults)


def remove(apps, schema_editor):
    ReminderRule = apps.get_model("reminders", "ReminderRule")
    Reminder = apps.get_model("reminders", "Reminder")
    codes = [spec["code"] for spec in NOTICE_RULES]
    ReminderRule.objects.filter(code__in=codes).exclude(pk__in=Reminder.objects.values("rule_id")).delete()


class Migration(migrations.Migration):
    dependencies = [("reminders", "0005_aftersale_notices")]

    operations = [migrations.RunPython(create, remove)]
