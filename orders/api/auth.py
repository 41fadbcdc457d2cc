"""`Authorization: Api-Key <key>`: each key is stored hashed and belongs to one storefront."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework_api_key.permissions import KeyParser

from orders.models import StorefrontAPIKey


class StorefrontAPIKeyAuthentication(authentication.BaseAuthentication):
    """Sets `request.auth` to the StorefrontAPIKey (with its storefront loaded)."""

    key_parser = KeyParser()

    def authenticate(self, request):
        raw = self.key_parser.get(request)
        if not raw:
            return None
        prefix, _, _ = raw.partition(".")
        key = (
            StorefrontAPIKey.objects.get_usable_keys()
            .select_related("storefront")
            .filter(prefix=prefix, storefront__active=True)
            .first()
        )
        if key is None or key.has_expired or not key.is_valid(raw):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return (None, key)

    def authenticate_header(self, request) -> str:
        return "Api-Key"


class HasStorefrontAPIKey(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, StorefrontAPIKey)


class StorefrontRateThrottle(throttling.SimpleRateThrottle):
    """One request budget per storefront, shared by all of its keys."""

    scope = "storefront"

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
