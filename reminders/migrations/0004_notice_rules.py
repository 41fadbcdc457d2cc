"""The built-in fulfillment notices: 发货通知 (SMS, with the carrier and tracking number),
签收通知 (in-app) and 商家取消通知 (SMS). Matched by code, so re-running changes nothing;
staff may edit or deactivate them in the admin afterwards.
"""

from django.db import migrations

from reminders.defaults import NOTICE_RULES


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
    dependencies = [("reminders", "0003_fulfillment_notices")]

    operations = [migrations.RunPython(create, remove)]
