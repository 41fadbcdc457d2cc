"""The per-storefront throttle: a fixed-window counter, in Redis or in whatever cache is configured."""

from __future__ import annotations

import os
import uuid

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

from orders.api.auth import StorefrontRateThrottle

REDIS_URL = os.environ.get("REDIS_URL", "")
WINDOW_START = 60.0 * 16_666_666  # a minute boundary, so the test never straddles two windows


def make_cache(kind: str):
    prefix = f"test-throttle-{uuid.uuid4().hex}"
    if kind == "redis":
        if not REDIS_URL:
            pytest.skip("needs Redis (set REDIS_URL)")
        return RedisCache(REDIS_URL, {"KEY_PREFIX": prefix})
    return LocMemCache(prefix, {})


@pytest.mark.parametrize("kind", ["locmem", "redis"])
def test_a_storefront_gets_its_rate_then_429(kind, api, monkeypatch):
    monkeypatch.setattr(StorefrontRateThrottle, "cache", make_cache(kind))
    monkeypatch.setattr(StorefrontRateThrottle, "rate", "3/min", raising=False)
    monkeypatch.setattr(StorefrontRateThrottle, "timer", staticmethod(lambda: WINDOW_START + 30.0))

    answers = [api.get("/api/v1/orders/NO-SUCH-ORDER/") for _ in range(4)]

    assert [answer.status_code for answer in answers] == [404, 404, 404, 429]
    assert answers[-1].headers["Retry-After"] == "30"  # the rest of the window


def test_the_throttle_counts_in_the_configured_cache_itself():
    """Not through django.core.cache.cache, a proxy that is no RedisCache even when Redis is
    configured: the throttle would then take the cache API's three round trips, not its one."""
    assert StorefrontRateThrottle().cache is caches["default"]


def test_a_window_key_in_redis_expires_after_its_window(api, monkeypatch):
    """One INCR per request, and the window's first request sets the key's expiry."""
    cache = make_cache("redis")
    monkeypatch.setattr(StorefrontRateThrottle, "cache", cache)
    monkeypatch.setattr(StorefrontRateThrottle, "rate", "100/min", raising=False)
    monkeypatch.setattr(StorefrontRateThrottle, "timer", staticmethod(lambda: WINDOW_START + 30.0))
    for _ in range(3):
        api.get("/api/v1/orders/NO-SUCH-ORDER/")
    client = cache._cache.get_client(write=True)
    (key,) = client.keys(f"{cache.key_prefix}*")
    assert int(client.get(key)) == 3
    assert 0 < client.ttl(key) <= 61
