"""WSGI entry point (gunicorn oms.wsgi:application). Servers run production settings unless told
otherwise; `make run` uses manage.py runserver, which defaults to oms.settings.dev."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms.settings.prod")
application = get_wsgi_application()

# What is loaded by now (Django, the apps, their models, admin and URL patterns, about 140,000
# objects) lives as long as the process. Frozen, the cyclic garbage collector stops walking it
# on every full collection: in the notify benchmark a worker's collections cost 0.2-0.3 ms of
# CPU per request before, 0.04 after (docs/performance.md).
gc.collect()
gc.freeze()
