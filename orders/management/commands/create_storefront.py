from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from orders.models import Storefront, StorefrontAPIKey


class Command(BaseCommand):
    help = "Create a storefront (or reuse one by name) and print a new API key once."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--code", help="slug for the storefront; defaults to the slugified name")

    def handle(self, *args, name: str, code: str | None = None, **options):
        code = code or slugify(name, allow_unicode=False) or None
        if not code:
            raise CommandError("Give --code: the name has no ASCII letters to make a slug from.")
        storefront, created = Storefront.objects.get_or_create(code=code, defaults={"name": name})
        _, key = StorefrontAPIKey.objects.create_key(name=f"{name} key", storefront=storefront)
        verb = "Created" if created else "Reused"
        self.stdout.write(f"{verb} storefront {storefront.code!r} ({storefront.name}).")
        self.stdout.write("API key (shown once, store it now):")
        self.stdout.write(key)
