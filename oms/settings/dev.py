"""Local development: DEBUG on, a fixed throwaway key, embedded defaults."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
# A newcomer on a laptop clicks "pay" and the built-in sandbox gateway answers.
OMS_SANDBOX_ENABLED = env.bool("OMS_SANDBOX_ENABLED", default=True)
# ... and the sandbox carrier moves the parcels (揽收 → 在途 → 派件 → 签收), signing its pushes with
# this throwaway Kuaidi100 salt.
OMS_CARRIER_SANDBOX_ENABLED = env.bool("OMS_CARRIER_SANDBOX_ENABLED", default=OMS_SANDBOX_ENABLED)
KUAIDI100_SALT = env.str("KUAIDI100_SALT", default="oms-dev-kuaidi100-salt")
# The demo superuser from `make run` logs in without an authenticator app; production keeps
# superusers under two-factor (see oms.settings.base).
OMS_2FA_REQUIRE_SUPERUSERS = env.bool("OMS_2FA_REQUIRE_SUPERUSERS", default=False)
