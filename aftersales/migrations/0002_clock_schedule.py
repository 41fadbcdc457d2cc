"""The beat schedule of after-sales: the deadlines (auto-approve or escalate, close, complete).
A row operations staff can edit in the admin; re-running is harmless (matched by name).
"""

from django.db import migrations

SCHEDULES = [
    (
        "售后时限",
        "aftersales.tasks.run_aftersales_clock",
        300,
        "每5分钟：超时未处理的售后自动同意或升级主管、逾期未寄回的关闭、退款完成的结单",
    ),
]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds, description in SCHEDULES:
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": interval, "description": description, "enabled": True}
        )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("aftersales", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
