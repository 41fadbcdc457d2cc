"""The warehouse API (WMS, handheld scanners) and the storefront's view of an order's parcels.

Thin: each view translates the request into one selector or service call. The parcel's JSON
is fulfillment.selectors' (shipment_as_json), the same in every answer.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from fulfillment.models import Shipment
from fulfillment.selectors import (
    shipment_as_json,
    shipments_for_order,
    shipments_for_warehouse,
    warehouse_shipment_as_json,
)
from fulfillment.services import shipment_ship
from orders.api.views import StorefrontView
from orders.events import Actor

from .auth import HasWarehouseAPIKey, WarehouseAPIKeyAuthentication, WarehouseRateThrottle
from .serializers import (
    ShipmentOutSerializer,
    ShipRequestSerializer,
    WarehouseShipmentFilterSerializer,
    WarehouseShipmentOutSerializer,
)


class WarehouseShipmentPagination(LimitOffsetPagination):
    """limit/offset, strictly: DRF would quietly read `limit=abc` as the default, so a
    scanner's typo would look like a short queue. A bad value is a 400 naming it."""

    default_limit = 50
    max_limit = 200

    def _strict(self, request, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isascii() or not raw.isdigit() or int(raw) < minimum or (maximum and int(raw) > maximum):
            bound = f"{minimum}..{maximum}" if maximum else f">= {minimum}"
            raise ValidationError({name: [_("应为整数（%(bound)s）") % {"bound": bound}]})
        return int(raw)

    def get_limit(self, request) -> int:
        return self._strict(request, self.limit_query_param, self.default_limit, 1, self.max_limit)

    def get_offset(self, request) -> int:
        return self._strict(request, self.offset_query_param, 0, 0)

    def get_schema_operation_parameters(self, view):
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"] |= {"minimum": 1, "maximum": self.max_limit, "default": self.default_limit}
        offset["schema"] |= {"minimum": 0, "default": 0}
        return [limit, offset]


class WarehouseView(APIView):
    authentication_classes = [WarehouseAPIKeyAuthentication]
    permission_classes = [HasWarehouseAPIKey]
    throttle_classes = [WarehouseRateThrottle]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # PostgreSQL text cannot hold NUL; such a shipment number names nothing.
        if any("\x00" in str(value) for value in kwargs.values()):
            raise NotFound()

    @property
    def warehouse(self):
        return self.request.auth.warehouse

    @property
    def actor(self) -> Actor:
        """A key is not a staff user: the warehouse system acts, named on the timeline."""
        return Actor.system(f"wms:{self.warehouse.code}")


class WarehouseShipmentListView(WarehouseView, generics.ListAPIView):
    serializer_class = WarehouseShipmentOutSerializer
    pagination_class = WarehouseShipmentPagination

    def get_queryset(self):
        known = {"status", self.paginator.limit_query_param, self.paginator.offset_query_param}
        unknown = sorted(set(self.request.query_params) - known)
        if unknown:  # `?stauts=pending` would otherwise list every parcel
            raise ValidationError({name or "?": [_("未知的查询参数")] for name in unknown})
        # a plain dict: DRF reads a QueryDict as a form, where `?status=` means "not given"
        filters = WarehouseShipmentFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return shipments_for_warehouse(warehouse_id=self.warehouse.pk, status=filters.validated_data.get("status"))

    @extend_schema(
        parameters=[WarehouseShipmentFilterSerializer],
        responses={200: WarehouseShipmentOutSerializer(many=True), 400: OpenApiResponse()},
        summary="This warehouse's parcels, oldest first, optionally of one status (e.g. pending)",
    )
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([warehouse_shipment_as_json(s) for s in page])


class WarehouseShipmentShipView(WarehouseView):
    @extend_schema(
        request=ShipRequestSerializer,
        responses={200: WarehouseShipmentOutSerializer, 400: OpenApiResponse(), 409: OpenApiResponse()},
        summary="Hand a parcel (or some of its units) to the carrier; idempotent on the tracking number",
    )
    def post(self, request, shipment_no: str):
        serializer = ShipRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        shipment = self.get_shipment(Shipment.objects, shipment_no)
        shipment, _changed = shipment_ship(shipment=shipment, actor=self.actor, **serializer.validated_data)
        shown = self.get_shipment(shipments_for_warehouse(warehouse_id=self.warehouse.pk), shipment.shipment_no)
        return Response(warehouse_shipment_as_json(shown))

    def get_shipment(self, shipments, shipment_no: str) -> Shipment:
        """Another warehouse's parcel is a 404, as if it did not exist."""
        shipment = shipments.filter(warehouse_id=self.warehouse.pk, shipment_no=shipment_no).first()
        if shipment is None:
            raise NotFound()
        return shipment


class OrderShipmentsView(StorefrontView):
    @extend_schema(
        responses={200: ShipmentOutSerializer(many=True)},
        summary="The parcels of one of this storefront's orders, with their tracking events",
    )
    def get(self, request, order_no: str):
        order = self.get_order(order_no)
        return Response([shipment_as_json(shipment) for shipment in shipments_for_order(order)])
