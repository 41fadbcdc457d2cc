from django.core.management.base import BaseCommand, CommandError

from fulfillment.models import WarehouseAPIKey
from inventory.models import Warehouse


class Command(BaseCommand):
    help = "Create an API key for one warehouse's WMS or scanners and print it once (only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("warehouse_code")
        parser.add_argument("--name", default="", help="what the key is for, e.g. 'PDA 3'; defaults to '<CODE> WMS'")

    def handle(self, *args, warehouse_code: str, name: str, **options):
        warehouse = Warehouse.objects.filter(code=warehouse_code).first()
        if warehouse is None:
            codes = ", ".join(Warehouse.objects.values_list("code", flat=True)) or "none yet"
            raise CommandError(f"No warehouse with code {warehouse_code!r} (known: {codes}).")
        if not warehouse.active:
            raise CommandError(f"Warehouse {warehouse.code} is not active; its keys would be refused.")
        _, key = WarehouseAPIKey.objects.create_key(name=name or f"{warehouse.code} WMS", warehouse=warehouse)
        self.stdout.write(f"Warehouse {warehouse.code} ({warehouse.name}).")
        self.stdout.write("API key (shown once, store it now):")
        self.stdout.write(key)
