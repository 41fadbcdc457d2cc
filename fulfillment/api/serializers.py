"""Shapes of the warehouse API and of `shipments[]` in the storefront's order JSON.

The answers are built by fulfillment.selectors.shipment_as_json (the one public shape of a
parcel); the output serializers here describe it for the OpenAPI schema. The input
serializers check shape only: carrier formats, lines and states are fulfillment.services'.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from fulfillment.models import Carrier, ShipmentStatus, TrackingState


class StrictCharField(serializers.CharField):
    """A JSON string, nothing else (DRF would take 1234567890123 and ship with it).

    The same rule as orders.api.serializers.StrictCharField, repeated so that the order JSON
    can describe `shipments[]` with these serializers without an import cycle.
    """

    default_error_messages = {"invalid": _("应为字符串")}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: DRF would also take the string "3" or 2.0."""

    def to_internal_value(self, data):
        if isinstance(data, (str, bool, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


# --- in -------------------------------------------------------------------------------


class ShipLineSerializer(serializers.Serializer):
    sku = StrictCharField(max_length=64, min_length=1)
    quantity = StrictIntegerField(min_value=1, max_value=99999)


class ShipRequestSerializer(serializers.Serializer):
    carrier = serializers.ChoiceField(choices=Carrier.choices, help_text="Kuaidi100 company code")
    tracking_no = StrictCharField(max_length=64, min_length=1, help_text="checked against the carrier's format")
    lines = serializers.ListField(
        child=ShipLineSerializer(),
        required=False,
        allow_empty=False,
        min_length=1,
        max_length=200,
        help_text="the units handed over now; leave out to ship the whole parcel. The rest stays in a new pending parcel.",
    )


class WarehouseShipmentFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ShipmentStatus.choices, required=False)


# --- out ------------------------------------------------------------------------------


class ShipmentLineOutSerializer(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField()


class TrackingEventOutSerializer(serializers.Serializer):
    time = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=TrackingState.choices, allow_blank=True)
    context = serializers.CharField()


class ShipmentOutSerializer(serializers.Serializer):
    shipment_no = serializers.CharField()
    status = serializers.ChoiceField(choices=ShipmentStatus.choices)
    status_display = serializers.CharField()
    warehouse = serializers.CharField(help_text="warehouse code")
    carrier = serializers.ChoiceField(choices=Carrier.choices, allow_blank=True)
    tracking_no = serializers.CharField(allow_blank=True)
    shipped_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    lines = ShipmentLineOutSerializer(many=True)
    tracking = TrackingEventOutSerializer(many=True)


class WarehouseShipmentOutSerializer(ShipmentOutSerializer):
    order_nos = serializers.ListField(
        child=serializers.CharField(), help_text="the orders in this parcel (合单: several)"
    )
