from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class FulfillmentConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fulfillment"
    verbose_name = pgettext_lazy("app", "发货")  # "app": in English a section is named in the plural
