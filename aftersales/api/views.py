"""The storefront's after-sales endpoints: thin views over aftersales.services."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from orders.api.views import StorefrontView

from ..models import Aftersale
from ..services import aftersale_cancel, aftersale_create, aftersale_return_shipment
from .serializers import AftersaleCreateSerializer, AftersaleOutSerializer, ReturnShipmentSerializer

REFUSALS = {
    400: OpenApiResponse(description="validation_error"),
    409: OpenApiResponse(
        description="aftersale_window_closed | quantity_exceeds_refundable | aftersale_in_progress | "
        "aftersale_not_allowed | invalid_transition"
    ),
}


class AftersaleView(StorefrontView):
    def get_aftersale(self, aftersale_no: str) -> Aftersale:
        aftersale = (
            Aftersale.objects.select_related("order", "return_shipment")
            .filter(aftersale_no=aftersale_no, order__storefront=self.storefront)
            .first()
        )
        if aftersale is None:
            raise NotFound()
        return aftersale

    def answer(self, aftersale: Aftersale, code=status.HTTP_200_OK) -> Response:
        return Response(AftersaleOutSerializer(self.get_aftersale(aftersale.aftersale_no)).data, status=code)


class OrderAftersaleCreateView(AftersaleView):
    @extend_schema(
        request=AftersaleCreateSerializer,
        responses={201: AftersaleOutSerializer, **REFUSALS},
        summary="Open an after-sales request (refund only, return and refund, exchange, resend)",
    )
    def post(self, request, order_no: str):
        serializer = AftersaleCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        aftersale = aftersale_create(order=self.get_order(order_no), actor=self.actor, **serializer.validated_data)
        return self.answer(aftersale, status.HTTP_201_CREATED)


class AftersaleDetailView(AftersaleView):
    @extend_schema(responses={200: AftersaleOutSerializer}, summary="Read one of this storefront's requests")
    def get(self, request, aftersale_no: str):
        return self.answer(self.get_aftersale(aftersale_no))


class AftersaleReturnShipmentView(AftersaleView):
    @extend_schema(
        request=ReturnShipmentSerializer,
        responses={200: AftersaleOutSerializer, **REFUSALS},
        summary="The customer's return parcel: carrier and tracking number",
    )
    def post(self, request, aftersale_no: str):
        serializer = ReturnShipmentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        aftersale = aftersale_return_shipment(
            aftersale=self.get_aftersale(aftersale_no), actor=self.actor, **serializer.validated_data
        )
        return self.answer(aftersale)


class AftersaleCancelView(AftersaleView):
    @extend_schema(request=None, responses={200: AftersaleOutSerializer, **REFUSALS}, summary="The customer withdraws")
    def post(self, request, aftersale_no: str):
        aftersale = aftersale_cancel(aftersale=self.get_aftersale(aftersale_no), actor=self.actor)
        return self.answer(aftersale)
