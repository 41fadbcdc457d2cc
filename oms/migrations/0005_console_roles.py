"""The roles gain the console's verbs: memos (客服, 仓储, 财务), hold / release and manual entry
(客服), and the second review of a manual order (主管)."""

from django.db import migrations

from oms.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("oms", "0004_aftersales_roles"),
        ("orders", "0013_console"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
