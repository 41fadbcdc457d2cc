"""OpenAPI: every storefront operation documents the error answers it can give.

One DRF exception handler (oms.errors) gives every error the same body, so the schema
says so once: an `Error` component, and for each operation the statuses it can answer.
Schemathesis (tests/oms/test_api_fuzz.py) holds the API to this.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The one error shape: a stable machine `code`, a human `message`, "
    "`fields` (dotted path → messages) where the input was at fault, `details` where the domain has more to say.",
    "properties": {
        "code": {"type": "string", "example": "validation_error"},
        "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "details": {"type": "object", "additionalProperties": {}},
    },
    "required": ["code", "message"],
}

ERROR_DESCRIPTIONS = {
    "400": "`validation_error` (see `fields`), `coupon_not_applicable`, `parse_error`",
    "401": "`not_authenticated` (no `Authorization: Api-Key …`) or `authentication_failed`",
    "403": "`customer_restricted`, `permission_denied`",
    "404": "`not_found`: no such order for this storefront",
    "409": "`invalid_transition`, `insufficient_stock`, `price_mismatch`, `idempotency_conflict`, "
    "`review_required`, `payment_deadline_passed`",
    "415": "`unsupported_media_type`: send `application/json`",
    "429": "`throttled`: the storefront's request budget is spent",
    "502": "`gateway_unavailable`: the payment gateway did not answer",
}


def _error_statuses(method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["401", "429"]
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        statuses.append("404")
    if method != "get":
        statuses += ["400", "403", "409"]
    if "requestBody" in operation:
        statuses.append("415")
    return statuses


def add_error_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, methods in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in methods.items():
            responses = operation.setdefault("responses", {})
            for status in set(_error_statuses(method, operation)) | {s for s in responses if s in ERROR_DESCRIPTIONS}:
                responses[status] = {"description": ERROR_DESCRIPTIONS[status], "content": error_body}
    return result
