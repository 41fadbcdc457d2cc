"""WSGI entry point (gunicorn oms.wsgi:application). Servers run production settings unless told
otherwise; `make run` uses manage.py runserver, which defaults to oms.settings.dev."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms.settings.prod")
application = get_wsgi_application()
