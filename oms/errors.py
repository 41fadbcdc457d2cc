"""Domain errors and the one place that turns them (and DRF's own) into JSON.

Every error answer has the same shape: a stable machine `code`, a human `message`,
`fields` (dotted path -> messages) where the input was at fault, and `details`
where the domain has more to say (available stock, the server's price breakdown).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransition, TransitionNotAllowed
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class DomainError(Exception):
    """A business rule said no. Subclasses fix `code` and the HTTP status."""

    code = "domain_error"
    status_code = status.HTTP_400_BAD_REQUEST
    default_message = _("请求被拒绝")

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        self.message = str(message or self.default_message)
        self.details = details
        self.fields = fields
        super().__init__(self.message)

    def as_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            payload["fields"] = self.fields
        if self.details is not None:
            payload["details"] = self.details
        return payload


class ValidationFailed(DomainError):
    code = "validation_error"
    default_message = _("提交的数据有误，请检查字段")


class InvalidTransition(DomainError):
    code = "invalid_transition"
    status_code = status.HTTP_409_CONFLICT
    default_message = _("订单当前状态不允许此操作")


class RefundRequired(DomainError):
    code = "refund_required"
    status_code = status.HTTP_409_CONFLICT
    default_message = _("订单已收款，取消时必须同时原路退款")


class PermissionDenied(DomainError, DjangoPermissionDenied):
    """The acting staff user lacks the permission a verb needs (roles: oms/roles.py).

    Also a Django PermissionDenied, so a view that does not catch it answers 403, never 500.
    """

    code = "permission_denied"
    status_code = status.HTTP_403_FORBIDDEN
    default_message = _("您没有执行此操作的权限")


def require_permission(user, permission: str) -> None:
    """Raise PermissionDenied unless `user` (a staff user) holds `permission` ("app.codename")."""
    if user is None or not user.has_perm(permission):
        from django.contrib.auth.models import Permission  # the auth app, loaded after settings

        app_label, codename = permission.split(".")
        name = Permission.objects.filter(content_type__app_label=app_label, codename=codename).values_list(
            "name", flat=True
        )
        label = next(iter(name), permission)
        raise PermissionDenied(
            _("您没有执行此操作的权限：%(name)s") % {"name": label}, details={"permission": permission}
        )


class InsufficientStock(DomainError):
    code = "insufficient_stock"
    status_code = status.HTTP_409_CONFLICT
    default_message = _("部分商品库存不足")


class PriceMismatch(DomainError):
    code = "price_mismatch"
    status_code = status.HTTP_409_CONFLICT
    default_message = _("expected_total 与服务器计算的应付金额不一致")


class CouponNotApplicable(DomainError):
    code = "coupon_not_applicable"
    default_message = _("优惠券不可用于此订单")


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status_code = status.HTTP_409_CONFLICT
    default_message = _("该 external_id 已用于内容不同的请求")


class CustomerRestricted(DomainError):
    code = "customer_restricted"
    status_code = status.HTTP_403_FORBIDDEN
    default_message = _("该顾客近期多次下单未付款，暂不支持货到付款")


class ReviewRequired(DomainError):
    code = "review_required"
    status_code = status.HTTP_409_CONFLICT
    default_message = _("订单有待人工复核的标记，需要员工审核")


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error structure into {"customer.mobile": [...], "lines[0].sku": [...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # DRF reports list items as {index: errors}
                path = f"{prefix}[{key}]"
            else:
                name = "" if key == "non_field_errors" else str(key)
                path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.update(_flatten(value, path))
    elif isinstance(detail, list) and detail and all(not isinstance(d, (dict, list)) for d in detail):
        out.setdefault(prefix or "non_field_errors", []).extend(str(d) for d in detail)
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if value:
                out.update(_flatten(value, f"{prefix}[{index}]"))
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return out


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(exc.as_payload(), status=exc.status_code)
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        err = InvalidTransition()
        return Response(err.as_payload(), status=err.status_code)
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        payload = {
            "code": "validation_error",
            "message": str(_("提交的数据有误，请检查字段")),
            "fields": fields,
        }
        return Response(payload, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
        response.data = {
            "code": code,
            "message": str(exc.detail) if not isinstance(exc.detail, (dict, list)) else str(exc.default_detail),
        }
    return response
