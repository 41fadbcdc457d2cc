from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class InventoryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inventory"
    verbose_name = pgettext_lazy("app", "库存")  # "app": in English a section is named in the plural
