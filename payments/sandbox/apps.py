from django.apps import AppConfig


class SandboxConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "payments.sandbox"
    label = "payments_sandbox"
    verbose_name = "沙箱支付网关"
