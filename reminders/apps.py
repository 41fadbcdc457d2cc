from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class RemindersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reminders"
    verbose_name = pgettext_lazy("app", "催付提醒")  # "app": in English a section is named in the plural
