"""The beat schedule of after-sales: the deadlines (auto-approve or escalate, close, complete).
A row operations staff can edit in the admin; re-running is harmless (matched by name).
"""

from django.db import migrations

from oms.beat import schedules_install, schedules_remove

SCHEDULES = [
    (
        "售后时限",
        "aftersales.tasks.run_aftersales_clock",
        300,
        "每5分钟：超时未处理的售后自动同意或升级主管、逾期未寄回的关闭、退款完成的结单",
    ),
]


def create(apps, schema_editor):
    schedules_install(apps, SCHEDULES)


def remove(apps, schema_editor):
    schedules_remove(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("aftersales", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
