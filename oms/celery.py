"""The Celery app. Workers and beat run production settings unless DJANGO_SETTINGS_MODULE says
otherwise: Procfile.dev (make run) and the tests name theirs."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms.settings.prod")

app = Celery("oms")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
