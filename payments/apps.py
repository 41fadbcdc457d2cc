from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "payments"
    verbose_name = "支付"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the deploy checks)
