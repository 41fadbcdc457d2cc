"""The beat schedule of carrier tracking: re-deliver tracking subscriptions left pending.
A row operations staff can edit in the admin; re-running is harmless (matched by name).
"""

from django.db import migrations

SCHEDULES = [
    (
        "重新投递物流订阅",
        "fulfillment.tasks.redeliver_tracking_subscriptions",
        600,
        "每10分钟：向快递100重新提交仍未订阅成功的运单",
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
        ("fulfillment", "0002_shipment_kind_aftersales"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
