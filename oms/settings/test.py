"""Test settings: the dev defaults, fast hashing, and a per-run throttle that never bites."""

from .dev import *  # noqa: F403
from .dev import REST_FRAMEWORK

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"storefront": "100000/min"},
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Tests change storefronts and keys between requests and expect the next request to see it;
# tests/orders/test_api_key_cache.py turns the cache on where it is the subject.
OMS_API_KEY_CACHE_SECONDS = 0
