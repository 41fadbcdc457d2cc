from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class AftersalesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "aftersales"
    verbose_name = pgettext_lazy("app", "售后")  # "app": in English a section is named in the plural
