"""The API key cache (OMS_API_KEY_CACHE_SECONDS): fewer lookups, never a weaker check.

The secret is checked against the stored hash on every request, cached or not; only the
key row (revoked? storefront active?) may be that many seconds old.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from orders.api.auth import StorefrontAPIKeyAuthentication
from orders.models import StorefrontAPIKey

TTL = 5.0


@pytest.fixture
def cached(settings):
    settings.OMS_API_KEY_CACHE_SECONDS = TTL
    StorefrontAPIKeyAuthentication.forget_keys()
    yield
    StorefrontAPIKeyAuthentication.forget_keys()


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def key_pair(storefront):
    return StorefrontAPIKey.objects.create_key(name="cached", storefront=storefront)


def get_missing(client: APIClient) -> int:
    """An authenticated 404 (no such order) or a 401: the cheapest way to ask "is this key good?"."""
    return client.get("/api/v1/orders/NO-SUCH-ORDER/").status_code


def test_a_cached_key_costs_no_query(cached, key_pair, django_assert_num_queries):
    _, key = key_pair
    client = client_with(key)
    assert get_missing(client) == 404
    with django_assert_num_queries(1):  # the order lookup only
        assert get_missing(client) == 404


def test_a_wrong_secret_with_a_cached_prefix_is_refused(cached, key_pair):
    key_obj, key = key_pair
    assert get_missing(client_with(key)) == 404
    assert get_missing(client_with(f"{key_obj.prefix}.{'x' * 32}")) == 401
    assert get_missing(client_with(f"{key_obj.prefix}.")) == 401


def test_a_revoked_key_stops_working_within_the_cache_time(cached, key_pair):
    key_obj, key = key_pair
    client = client_with(key)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert get_missing(client) == 404
        key_obj.revoked = True
        key_obj.save()
        clock.shift(timedelta(seconds=TTL + 0.1))
        assert get_missing(client) == 401


def test_a_disabled_storefront_stops_working_within_the_cache_time(cached, key_pair, storefront):
    _, key = key_pair
    client = client_with(key)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert get_missing(client) == 404
        storefront.active = False
        storefront.save()
        clock.shift(timedelta(seconds=TTL + 0.1))
        assert get_missing(client) == 401


def test_an_expired_key_is_refused_even_while_cached(cached, key_pair):
    key_obj, key = key_pair
    key_obj.expiry_date = timezone.now() + timedelta(seconds=1)
    key_obj.save()
    client = client_with(key)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert get_missing(client) == 404
        clock.shift(timedelta(seconds=2))
        assert get_missing(client) == 401


def test_with_the_cache_off_a_revoked_key_stops_at_once(settings, key_pair):
    settings.OMS_API_KEY_CACHE_SECONDS = 0
    key_obj, key = key_pair
    client = client_with(key)
    assert get_missing(client) == 404
    key_obj.revoked = True
    key_obj.save()
    assert get_missing(client) == 401
