"""`Authorization: Api-Key <key>`: each key is stored hashed and belongs to one storefront."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework_api_key.permissions import KeyParser

from oms.redis_kept import KeptConnection
from orders.models import StorefrontAPIKey


class StorefrontAPIKeyAuthentication(authentication.BaseAuthentication):
    """Sets `request.auth` to the StorefrontAPIKey (with its storefront loaded).

    The key row is looked up by its prefix and kept in this process for
    OMS_API_KEY_CACHE_SECONDS (default 5), so a busy storefront does not pay a database
    round trip per request. The secret is still checked on every request against the
    stored hash (SHA-512, constant-time), and the expiry date too; only "is the key revoked,
    is the storefront still active, which payment methods does it allow" may be up to that
    many seconds old in each worker. That is the trade-off: revoking a key or disabling a
    storefront takes effect within OMS_API_KEY_CACHE_SECONDS everywhere, not at once.
    Set it to 0 to look the key up on every request. Unknown prefixes are never cached.
    """

    key_parser = KeyParser()
    # prefix -> (time.time() fetched, key with its storefront); per process.
    _cache: dict[str, tuple[float, StorefrontAPIKey]] = {}

    def authenticate(self, request):
        raw = self.key_parser.get(request)
        if not raw:
            return None
        prefix, _, _ = raw.partition(".")
        key = self._usable_key(prefix)
        if key is None or key.has_expired or not key.is_valid(raw):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return (None, key)

    @classmethod
    def _usable_key(cls, prefix: str) -> StorefrontAPIKey | None:
        ttl = settings.OMS_API_KEY_CACHE_SECONDS
        now = time.time()
        cached = cls._cache.get(prefix)
        if cached is not None and 0 <= now - cached[0] < ttl:  # a clock set back expires it
            return cached[1]
        key = (
            StorefrontAPIKey.objects.get_usable_keys()
            .select_related("storefront")
            .filter(prefix=prefix, storefront__active=True)
            .first()
        )
        if key is None:
            cls._cache.pop(prefix, None)
        elif ttl > 0:
            cls._cache[prefix] = (now, key)
        return key

    @classmethod
    def forget_keys(cls) -> None:
        """Drop every cached key in this process (tests; a deploy that rotates keys)."""
        cls._cache.clear()

    def authenticate_header(self, request) -> str:
        return "Api-Key"


class HasStorefrontAPIKey(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, StorefrontAPIKey)


class StorefrontRateThrottle(throttling.SimpleRateThrottle):
    """One request budget per storefront, shared by all of its keys.

    A fixed-window counter: one atomic increment per request. DRF's default keeps the time
    of every request in the window as one cached list, read and rewritten whole on each
    request (as long as the rate: thousands of entries for a busy connector) and it loses
    counts when two requests of one storefront race. The trade-off: around a window's edge
    a storefront can get up to twice its rate within one window's length.
    """

    scope = "storefront"
    _connections: dict = {}  # connection pool -> its KeptConnection

    @property
    def cache(self):
        # The configured backend itself: DRF's class attribute is django.core.cache.cache, a
        # proxy that is never a RedisCache, so the one-round-trip path below was never taken.
        return caches[DEFAULT_CACHE_ALIAS]

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        key = f"{self.key}:{window}"
        if isinstance(self.cache, RedisCache):
            count = self._count_in_redis(key)
        else:
            try:
                count = self.cache.incr(key)
            except ValueError:  # the window's first request (or its key expired just now)
                count = 1 if self.cache.add(key, 1, self.duration + 1) else self.cache.incr(key)
        return count <= self.num_requests

    def _count_in_redis(self, key: str) -> int:
        """One INCR per request; the window's first request also sets the key's expiry. Django's
        cache API needs three round trips (EXISTS, INCRBY, and SET NX for a window's first
        request). Should the EXPIRE never arrive (the process dies in between), the key only
        lingers: the next window counts under a new key. Uses the backend's own key prefix and
        the settings of its connection pool (its `_cache` client), on a connection kept by this
        process (oms.redis_kept: a redis client costs more than twice as much per command).
        """
        full_key = self.cache.make_and_validate_key(key)
        pool = self.cache._cache._get_connection_pool(True)
        connection = self._connections.get(pool)
        if connection is None:
            connection = self._connections[pool] = KeptConnection(pool)
        count = connection.execute("INCR", full_key)
        if count == 1:
            connection.execute("EXPIRE", full_key, self.duration + 1)
        return int(count)

    def wait(self):
        return max(self.window_ends - self.now, 0.0)

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, StorefrontAPIKey):
            return None
        return self.cache_format % {
            "scope": self.scope,
            "ident": request.auth.storefront_id,
        }


class StorefrontAPIKeyScheme(OpenApiAuthenticationExtension):
    target_class = StorefrontAPIKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; the key is printed once by `manage.py create_storefront`.",
        }
