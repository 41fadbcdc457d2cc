from __future__ import annotations

from rest_framework import serializers

from fulfillment.models import Carrier

from ..models import Aftersale, AftersaleReason, AftersaleType
from ..services import aftersale_deadline, line_refund_amount


class AftersaleLineInSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=999)
    # 换货换另一规格（同价）: the SKU to send instead; only for type "exchange".
    exchange_to = serializers.CharField(max_length=64, required=False, allow_blank=True)


class AftersaleCreateSerializer(serializers.Serializer):
    # Compensation (补差) is opened by staff only, never through the storefront API.
    type = serializers.ChoiceField(choices=[c for c in AftersaleType.choices if c[0] != AftersaleType.COMPENSATION])
    reason = serializers.ChoiceField(choices=AftersaleReason.choices)
    lines = AftersaleLineInSerializer(many=True, min_length=1, max_length=100)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    images = serializers.ListField(
        child=serializers.URLField(max_length=500), max_length=9, required=False, default=list
    )


class ReturnShipmentSerializer(serializers.Serializer):
    carrier = serializers.ChoiceField(choices=Carrier.choices)
    tracking_no = serializers.CharField(max_length=64)


class AftersaleLineOutSerializer(serializers.Serializer):
    sku = serializers.CharField(source="order_line.sku_code")
    quantity = serializers.IntegerField()
    refund_amount = serializers.DecimalField(max_digits=12, decimal_places=2)


class ReturnParcelSerializer(serializers.Serializer):
    carrier = serializers.CharField()
    tracking_no = serializers.CharField()
    status = serializers.CharField()
    delivered_at = serializers.DateTimeField(allow_null=True)


class AftersaleOutSerializer(serializers.ModelSerializer):
    order_no = serializers.CharField(source="order.order_no")
    status_display = serializers.CharField(source="get_status_display")
    lines = serializers.SerializerMethodField()
    deadline = serializers.SerializerMethodField()
    return_shipment = ReturnParcelSerializer(allow_null=True)

    class Meta:
        model = Aftersale
        fields = [
            "aftersale_no",
            "order_no",
            "type",
            "status",
            "status_display",
            "reason",
            "responsibility",
            "description",
            "images",
            "lines",
            "refund_amount",
            "refunded_amount",
            "deadline",
            "return_shipment",
            "reject_reason",
            "created_at",
        ]
        read_only_fields = fields

    def get_lines(self, aftersale: Aftersale) -> list[dict]:
        return [
            {
                "sku": line.order_line.sku_code,
                "quantity": line.quantity,
                "refund_amount": str(line.refund_amount if line.quantity_accepted is not None else self._preview(line)),
            }
            for line in aftersale.lines.select_related("order_line")
        ]

    def _preview(self, line) -> str:
        return line_refund_amount(line.order_line, unit_from=line.unit_from, units=line.quantity)

    def get_deadline(self, aftersale: Aftersale) -> str | None:
        deadline = aftersale_deadline(aftersale)
        return deadline.isoformat() if deadline else None
