from django.apps import AppConfig


class OmsConfig(AppConfig):
    """The project package as an app only for the staff roles' data migration (oms/roles.py)."""

    name = "oms"
    verbose_name = "OMS"
