"""`Authorization: Api-Key <key>` for WMS and handheld scanners: each key is stored hashed and
belongs to one warehouse, and only reaches that warehouse's parcels.

The same header as the storefront API, but a different key table: a storefront key is refused
here (401) and a warehouse key is refused by the storefront API.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.settings import api_settings
from rest_framework_api_key.permissions import KeyParser

from fulfillment.models import WarehouseAPIKey


class WarehouseAPIKeyAuthentication(authentication.BaseAuthentication):
    """Sets `request.auth` to the WarehouseAPIKey (with its warehouse loaded)."""

    key_parser = KeyParser()

    def authenticate(self, request):
        raw = self.key_parser.get(request)
        if not raw:
            return None
        prefix, _, _ = raw.partition(".")
        key = (
            WarehouseAPIKey.objects.get_usable_keys()
            .select_related("warehouse")
            .filter(prefix=prefix, warehouse__active=True)
            .first()
        )
        if key is None or key.has_expired or not key.is_valid(raw):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return (None, key)

    def authenticate_header(self, request) -> str:
        return "Api-Key"


class HasWarehouseAPIKey(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, WarehouseAPIKey)


class WarehouseRateThrottle(throttling.SimpleRateThrottle):
    """One request budget per warehouse, shared by all of its scanners. The rate is
    DEFAULT_THROTTLE_RATES["warehouse"], or the storefront's when none is set."""

    scope = "warehouse"

    def get_rate(self):
        rates = api_settings.DEFAULT_THROTTLE_RATES
        return rates.get(self.scope) or rates.get("storefront")

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, WarehouseAPIKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.warehouse_id}


class WarehouseAPIKeyScheme(OpenApiAuthenticationExtension):
    target_class = WarehouseAPIKeyAuthentication
    name = "WarehouseApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; a warehouse's key, printed once by `manage.py create_warehouse_key CODE`.",
        }
