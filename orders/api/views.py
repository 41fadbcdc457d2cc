from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import services
from orders.selectors import order_for_storefront
from payments.services import payment_start
from workflows.address import order_change_address
from workflows.cancellation import order_cancel

from .serializers import (
    AddressPatchSerializer,
    CancelSerializer,
    OrderCreateSerializer,
    OrderOutSerializer,
    PaymentStartedSerializer,
    PaymentStartSerializer,
)


class StorefrontView(APIView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permission and throttle first
        # PostgreSQL text cannot hold NUL, so a lookup with one would fail with a 500; such an id names nothing.
        if any("\x00" in str(value) for value in kwargs.values()):
            raise NotFound()

    @property
    def storefront(self):
        return self.request.auth.storefront

    @property
    def actor(self) -> services.Actor:
        return services.Actor.storefront(self.storefront)

    def get_order(self, order_no: str):
        return order_for_storefront(storefront=self.storefront, order_no=order_no)

    def respond(self, order, code=status.HTTP_200_OK) -> Response:
        order = self.get_order(order.order_no)
        return Response(OrderOutSerializer(order).data, status=code)

    def respond_as_is(self, order, code=status.HTTP_200_OK) -> Response:
        """Answer with `order` as the service returned it, without reading it again."""
        return Response(OrderOutSerializer(order).data, status=code)


class OrderCreateView(StorefrontView):
    @extend_schema(
        request=OrderCreateSerializer,
        responses={
            201: OrderOutSerializer,
            200: OrderOutSerializer,
            400: OpenApiResponse(),
            409: OpenApiResponse(),
        },
        summary="Create an order (idempotent on external_id)",
    )
    def post(self, request):
        serializer = OrderCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order, created = services.order_create(storefront=self.storefront, payload=serializer.to_input())
        # A new order comes back with its lines prefetched; a replay is the row just read.
        return self.respond_as_is(order, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OrderDetailView(StorefrontView):
    @extend_schema(
        responses={200: OrderOutSerializer},
        summary="Read one of this storefront's orders",
    )
    def get(self, request, order_no: str):
        return Response(OrderOutSerializer(self.get_order(order_no)).data)


class OrderCancelView(StorefrontView):
    @extend_schema(
        request=CancelSerializer,
        responses={200: OrderOutSerializer},
        summary="Customer cancels",
    )
    def post(self, request, order_no: str):
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = order_cancel(
            order=self.get_order(order_no),
            actor=self.actor,
            **serializer.validated_data,
        )
        return self.respond(order)


class OrderConfirmReceiptView(StorefrontView):
    @extend_schema(
        request=None,
        responses={200: OrderOutSerializer},
        summary="Customer confirms receipt",
    )
    def post(self, request, order_no: str):
        order = services.order_complete(order=self.get_order(order_no), actor=self.actor)
        return self.respond(order)


class OrderAddressView(StorefrontView):
    @extend_schema(
        request=AddressPatchSerializer,
        responses={200: OrderOutSerializer},
        summary="Change address before shipment",
    )
    def patch(self, request, order_no: str):
        serializer = AddressPatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        address = {key: value for key, value in serializer.validated_data.items() if key in request.data}
        order = order_change_address(order=self.get_order(order_no), actor=self.actor, address=address)
        return self.respond(order)


class OrderPaymentView(StorefrontView):
    @extend_schema(
        request=PaymentStartSerializer,
        responses={201: PaymentStartedSerializer, 409: OpenApiResponse(), 502: OpenApiResponse()},
        summary="Start a payment: pay_url (Alipay page pay / sandbox cashier) or code_url (WeChat Native)",
    )
    def post(self, request, order_no: str):
        serializer = PaymentStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        payment, pay = payment_start(order=self.get_order(order_no), actor=self.actor, **serializer.validated_data)
        body = {
            "out_trade_no": payment.out_trade_no,
            "channel": payment.channel,
            "amount": payment.amount,
            "expires_at": payment.expires_at,
        }
        body |= {"pay_url": pay.pay_url} if pay.pay_url else {"code_url": pay.code_url}
        return Response(PaymentStartedSerializer(body).data, status=status.HTTP_201_CREATED)
