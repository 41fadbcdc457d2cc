"""The beat schedule of carrier tracking: re-deliver tracking subscriptions left pending.
A row operations staff can edit in the admin; re-running is harmless (matched by name).
"""

from django.db import migrations

from oms.beat import schedules_install, schedules_remove

SCHEDULES = [
    (
        "重新投递物流订阅",
        "fulfillment.tasks.redeliver_tracking_subscriptions",
        600,
        "每10分钟：向快递100重新提交仍未订阅成功的运单",
    ),
]


def create(apps, schema_editor):
    schedules_install(apps, SCHEDULES)


def remove(apps, schema_editor):
    schedules_remove(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("fulfillment", "0002_shipment_kind_aftersales"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
