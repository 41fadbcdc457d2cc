from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class SandboxConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "payments.sandbox"
    label = "payments_sandbox"
    verbose_name = pgettext_lazy("app", "沙箱支付网关")  # "app": in English a section is named in the plural
