"""The built-in rules: order confirmation, 30 minutes after creation, 2 hours before the
deadline, the payment-trouble nudge and the closed-order notice. Matched by code, so
re-running changes nothing; staff may edit or deactivate them in the admin afterwards.
"""

from django.db import migrations

from reminders.defaults import BUILTIN_RULES


def create(apps, schema_editor):
    ReminderRule = apps.get_model("reminders", "ReminderRule")
    for spec in BUILTIN_RULES:
        defaults = {key: value for key, value in spec.items() if key != "code"}
        ReminderRule.objects.get_or_create(code=spec["code"], defaults=defaults)


def remove(apps, schema_editor):
    ReminderRule = apps.get_model("reminders", "ReminderRule")
    Reminder = apps.get_model("reminders", "Reminder")
    codes = [spec["code"] for spec in BUILTIN_RULES]
    ReminderRule.objects.filter(code__in=codes).exclude(
        pk__in=Reminder.objects.values("rule_id")
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("reminders", "0001_initial")]

    operations = [migrations.RunPython(create, remove)]
