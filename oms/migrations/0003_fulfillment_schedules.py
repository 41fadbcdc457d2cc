"""Fulfillment's default Celery beat schedules (docs/fulfillment-clock.md), as rows operations
staff can edit in the admin. Re-running is harmless: rows are matched by name.
"""

from django.db import migrations

from oms.beat import schedules_install, schedules_remove

# (name, task, every seconds, description)
SCHEDULES = [
    ("分仓：补分配待发货订单", "fulfillment.tasks.allocate_pending_orders", 60, "每分钟：分配丢失消息或过了释放延迟的待发货订单"),
    ("物流：发货后未揽收预警", "fulfillment.tasks.alert_parcels_without_pickup", 1800, "每30分钟：发货超过 OMS_PICKUP_ALERT_HOURS 小时仍无揽收，开物流异常（虚假发货风险）"),
    ("物流：长时间未更新预警", "fulfillment.tasks.alert_stale_tracking", 3600, "每小时：超过 OMS_TRACKING_STALE_HOURS 小时没有物流更新，开物流异常"),
    ("发货：超时未发货标记", "fulfillment.tasks.flag_overdue_shipments", 600, "每10分钟：超过最晚发货时间仍未发出的包裹，记入订单时间线"),
]


def create(apps, schema_editor):
    schedules_install(apps, SCHEDULES)


def remove(apps, schema_editor):
    schedules_remove(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("oms", "0002_fulfillment_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
