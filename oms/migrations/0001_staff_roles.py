"""The staff groups 客服, 仓储, 财务, 运营, 主管 with their permissions (oms/roles.py)."""

from django.db import migrations

from oms.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("inventory", "0004_role_permissions"),
        ("orders", "0009_pii_access"),
        ("payments", "0003_role_permissions"),
        ("reminders", "0002_builtin_rules"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
