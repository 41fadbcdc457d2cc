from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class PaymentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "payments"
    verbose_name = pgettext_lazy("app", "支付")  # "app": in English a section is named in the plural

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the deploy checks)
