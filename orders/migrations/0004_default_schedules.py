"""The default Celery beat schedules, as rows operations staff can edit in the admin
(django-celery-beat's database scheduler). Re-running is harmless: rows are matched by name.
"""

from django.db import migrations

# (name, task, every seconds, description)
SCHEDULES = [
    ("关闭超时未付款订单", "orders.tasks.close_expired_orders", 60, "每分钟：超时关单，释放库存（先向支付渠道查单）"),
    ("发送到期催付提醒", "reminders.tasks.send_due_reminders", 60, "每分钟：下单确认、催付、支付受阻提醒、关单通知"),
    ("补单：查询长时间未通知的支付", "payments.tasks.sync_stale_payments", 300, "每5分钟：向渠道查询超过5分钟没有通知的支付单"),
    ("超时自动确认收货", "orders.tasks.confirm_receipt_overdue", 3600, "每小时：发货后N天或签收后M天自动确认收货"),
    ("重新投递未完成的退款", "payments.tasks.redeliver_refunds", 300, "每5分钟：重新执行卡住的退款（同一退款单号）"),
    ("沙箱：重新投递异步通知", "payments.sandbox.tasks.sandbox_redeliver_overdue_notifies", 300, "每5分钟：沙箱网关补发丢失的通知投递"),
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
        ("orders", "0003_risk_flag_and_delivered_at"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
