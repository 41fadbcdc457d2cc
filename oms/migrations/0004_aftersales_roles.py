"""The roles gain after-sales permissions (客服 approve, 仓储 inspect, 主管 large amounts)."""

from django.db import migrations

from oms.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("oms", "0003_fulfillment_schedules"),
        ("aftersales", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
