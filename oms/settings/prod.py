"""Production: SECRET_KEY is required, HTTPS everywhere; passes `check --deploy`.

`check --deploy` also fails (oms.E001) while a payment channel has no merchant credentials and
the sandbox gateway is off: payments on it could not start.
"""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY")  # no default: refuse to start without one

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
# The sandbox gateway's cashier marks orders paid without money: only a staging site turns it on.
OMS_SANDBOX_ENABLED = env.bool("OMS_SANDBOX_ENABLED", default=False)
OMS_CARRIER_SANDBOX_ENABLED = env.bool("OMS_CARRIER_SANDBOX_ENABLED", default=OMS_SANDBOX_ENABLED)
