"""GET /api/v1/orders/{order_no}/messages/: what we sent the customer about an order."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from orders.api.views import StorefrontView

from .selectors import order_messages


class OrderMessageSerializer(serializers.Serializer):
    sent_at = serializers.DateTimeField()
    channel = serializers.CharField()
    purpose = serializers.CharField()
    text = serializers.CharField()


class OrderMessagesView(StorefrontView):
    @extend_schema(
        responses={200: OrderMessageSerializer(many=True)},
        summary="Messages sent about one of this storefront's orders (in-app, SMS, email), oldest first",
    )
    def get(self, request, order_no: str):
        order = self.get_order(order_no)
        return Response(OrderMessageSerializer(order_messages(order=order), many=True).data)
