"""The roles gain fulfillment's permissions (pick, pack, ship, merge, exceptions)."""

from django.db import migrations

from oms.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("oms", "0001_staff_roles"),
        ("fulfillment", "0001_initial"),
        ("inventory", "0005_allocation_and_bins"),
        ("orders", "0011_fulfillment"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
