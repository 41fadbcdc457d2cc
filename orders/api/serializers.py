"""Shape validation for the storefront API. Business rules live in orders.services."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db.models.query_utils import DeferredAttribute
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.utils.serializer_helpers import BindingDict

from fulfillment.api.serializers import ShipmentOutSerializer
from fulfillment.selectors import shipment_as_json, shipments_for_order
from orders.models import CUSTOMER_CANCEL_REASONS, CancelReason, Order, OrderStatus, OrderType, PaymentMethod
from orders.services import OrderInput

# [0-9], not \d: \d also matches full-width digits, which SMS gateways and lookups cannot use.
MAINLAND_MOBILE = RegexValidator(r"^1[3-9][0-9]{9}$", _("请输入有效的中国大陆手机号"), code="invalid_mobile")
PHONE = RegexValidator(
    r"^(1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8})$",
    _("请输入有效的手机号或固定电话"),
    code="invalid_phone",
)
POSTCODE = RegexValidator(r"^[0-9]{6}$", _("邮编应为 6 位数字"), code="invalid_postcode")


class FieldsBuiltOnce:
    """Build a serializer's fields once per class, not once per request.

    DRF deep-copies every declared field (nested serializers included) for every serializer
    instance, and a ModelSerializer derives its fields from the model again each time; for
    the order create request and answer that cost more than validating and serializing.
    These fields keep no state between uses and read no context, so every instance uses the
    fields of one context-less prototype of its class, built the first time. Do not put a
    field that reads `self.context` or `self.root` (hyperlinks, the request, CurrentUserDefault,
    partial updates) on such a serializer. Add fields the usual DRF way; nothing else changes.
    """

    @property
    def fields(self):
        cls = type(self)
        shared = cls.__dict__.get("_shared_fields")
        if shared is None:
            prototype = cls()
            shared = BindingDict(prototype)
            for name, field in prototype.get_fields().items():
                shared[name] = field
            cls._shared_fields = shared
        return shared


class ReadsAttributesDirectly:
    """For answer serializers: a field whose source is one model column reads it with getattr.

    DRF's to_representation asks every field for its value through Field.get_attribute, which
    walks the source path and checks each value for being something to call (inspect.signature,
    per field, per answer). A model column never is, so for those fields this reads the
    attribute itself and hands it to the field as DRF would; every other field (methods, nested
    serializers, dotted sources, properties) still goes DRF's way. The JSON is the same.
    """

    def to_representation(self, instance):
        plans = type(self).__dict__.get("_plans")
        if plans is None:
            plans = type(self)._plans = {}
        plan = plans.get(type(instance))
        if plan is None:
            plan = plans[type(instance)] = [
                (field.field_name, field, _column_attname(type(instance), field)) for field in self._readable_fields
            ]
        answer = {}
        for name, field, attname in plan:
            if attname is None:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
                if isinstance(value, PKOnlyObject):
                    value = None if value.pk is None else value
            else:
                value = getattr(instance, attname)
            answer[name] = None if value is None else field.to_representation(value)
        return answer


def _column_attname(model: type, field: serializers.Field) -> str | None:
    """The attribute to read for `field` directly, if its source is one concrete column of `model`."""
    if (
        isinstance(field, serializers.BaseSerializer | serializers.SerializerMethodField)
        or len(field.source_attrs) != 1
    ):
        return None
    (name,) = field.source_attrs
    return name if isinstance(getattr(model, name, None), DeferredAttribute) else None


class StrictCharField(serializers.CharField):
    """A JSON string, nothing else: DRF would turn 310000 or 1e-245 into text and store it."""

    default_error_messages = {"invalid": _("应为字符串")}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictEmailField(StrictCharField, serializers.EmailField):
    pass


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: DRF would also take the string "3"."""

    def to_internal_value(self, data):
        if isinstance(data, (str, bool)) or (isinstance(data, float) and not data.is_integer()):
            self.fail("invalid")
        return super().to_internal_value(data)


def text(max_length: int, required: bool = True, **kwargs):
    # min_length=1 changes nothing at run time (blank is refused first) but tells the schema.
    return StrictCharField(
        max_length=max_length,
        min_length=1 if required else None,
        required=required,
        allow_blank=not required,
        trim_whitespace=True,
        **kwargs,
    )


class CustomerSerializer(FieldsBuiltOnce, serializers.Serializer):
    name = text(64)
    mobile = StrictCharField(validators=[MAINLAND_MOBILE])
    email = StrictEmailField(required=False, allow_blank=True, default="")
    member_id = text(64, required=False, default="")


class AddressSerializer(FieldsBuiltOnce, serializers.Serializer):
    receiver = text(64)
    phone = StrictCharField(validators=[PHONE])
    province = text(32)
    city = text(32)
    district = text(32)
    detail = text(200)
    postcode = StrictCharField(required=False, allow_blank=True, default="", validators=[POSTCODE])


class AddressPatchSerializer(AddressSerializer):
    """PATCH .../address/: any subset of the address fields; the rest stay as they were."""

    def __init__(self, *args, **kwargs):
        kwargs["partial"] = True
        super().__init__(*args, **kwargs)


class LineSerializer(FieldsBuiltOnce, serializers.Serializer):
    sku = text(64)
    quantity = StrictIntegerField(min_value=1, max_value=999)


class OrderCreateSerializer(FieldsBuiltOnce, serializers.Serializer):
    external_id = text(64)
    order_type = serializers.ChoiceField(choices=OrderType.choices, default=OrderType.NORMAL)
    payment_method = serializers.ChoiceField(choices=PaymentMethod.choices)
    customer = CustomerSerializer()
    shipping_address = AddressSerializer()
    # A ListField, not LineSerializer(many=True): its length limits reach the schema (minItems/maxItems).
    lines = serializers.ListField(child=LineSerializer(), allow_empty=False, min_length=1, max_length=100)
    coupon_code = text(64, required=False, default="")
    remark = StrictCharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=settings.OMS_REMARK_MAX_LENGTH,
    )
    expected_total = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, min_value=0)

    def to_input(self) -> OrderInput:
        data = self.validated_data
        return OrderInput(
            external_id=data["external_id"],
            order_type=data["order_type"],
            payment_method=data["payment_method"],
            customer=dict(data["customer"]),
            shipping_address=dict(data["shipping_address"]),
            lines=[dict(line) for line in data["lines"]],
            coupon_code=data["coupon_code"],
            remark=data["remark"],
            expected_total=data.get("expected_total"),
        )


class CancelSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=[(r.value, r.label) for r in CUSTOMER_CANCEL_REASONS])
    note = StrictCharField(required=False, allow_blank=True, default="", max_length=200)


class OrderLineOutSerializer(ReadsAttributesDirectly, FieldsBuiltOnce, serializers.Serializer):
    sku = serializers.CharField(source="sku_code")
    name = serializers.CharField()
    spec = serializers.CharField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    quantity = serializers.IntegerField()
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2)
    discount = serializers.DecimalField(max_digits=12, decimal_places=2)


class AftersaleSummarySerializer(serializers.Serializer):
    aftersale_no = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    status_display = serializers.CharField(source="get_status_display")
    refund_amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    refunded_amount = serializers.DecimalField(max_digits=12, decimal_places=2)


_STATUS_LABELS: dict[str | None, dict[str, str]] = {}


def status_label(status: str) -> str:
    """What ``order.get_status_display()`` gives, in the active language, from a table kept per
    language: Django's version rebuilds the choices dict on every call, translating each label
    in it, and every order answer calls it once."""
    language = translation.get_language()
    labels = _STATUS_LABELS.get(language)
    if labels is None:
        field = Order._meta.get_field("status")
        labels = _STATUS_LABELS[language] = {value: str(label) for value, label in field.flatchoices}
    return labels.get(status, status)


class OrderOutSerializer(ReadsAttributesDirectly, FieldsBuiltOnce, serializers.ModelSerializer):
    """The order answer. Serializing a fresh order from order_create reads nothing: its
    lines come prefetched (orders.services.order_create), and so must any relation added
    here later (a new order's shipments are known to be empty).
    """

    # A method field, not CharField(source="get_status_display"): DRF inspects a callable source's
    # signature on every answer before calling it.
    status_display = serializers.SerializerMethodField()
    customer = serializers.SerializerMethodField()
    shipping_address = serializers.SerializerMethodField()
    lines = OrderLineOutSerializer(many=True)
    # "" until the order is cancelled; said explicitly so the schema's enum admits it.
    cancel_reason = serializers.ChoiceField(choices=CancelReason.choices, allow_blank=True, read_only=True)
    shipments = serializers.SerializerMethodField()
    aftersales = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "order_no",
            "external_id",
            "status",
            "status_display",
            "order_type",
            "payment_method",
            "goods_total",
            "shipping_fee",
            "discount_total",
            "payable_total",
            "paid_total",
            "refunded_total",
            "payment_deadline",
            "customer",
            "shipping_address",
            "lines",
            "remark",
            "cancel_reason",
            "fulfillment_status",
            "shipments",
            "aftersales",
            "carrier",
            "tracking_no",
            "created_at",
            "paid_at",
            "approved_at",
            "shipped_at",
            "completed_at",
            "cancelled_at",
        ]
        read_only_fields = fields

    def get_status_display(self, order: Order) -> str:
        return status_label(order.status)

    def get_customer(self, order: Order) -> dict[str, str]:
        return {
            "name": order.customer_name,
            "mobile": order.customer_mobile,
            "email": order.customer_email,
            "member_id": order.customer_member_id,
        }

    @extend_schema_field(ShipmentOutSerializer(many=True))
    def get_shipments(self, order: Order) -> list[dict]:
        return [shipment_as_json(shipment) for shipment in shipments_for_order(order)]

    @extend_schema_field(AftersaleSummarySerializer(many=True))
    def get_aftersales(self, order: Order) -> list[dict]:
        """A summary of the order's after-sales requests; an unpaid order has none (no query)."""
        if order.status == OrderStatus.PENDING_PAYMENT:
            return []
        return AftersaleSummarySerializer(order.aftersales.order_by("created_at", "pk"), many=True).data

    def get_shipping_address(self, order: Order) -> dict[str, str]:
        return {
            "receiver": order.receiver,
            "phone": order.receiver_phone,
            "province": order.province,
            "city": order.city,
            "district": order.district,
            "detail": order.address_detail,
            "postcode": order.postcode,
        }


class PaymentStartSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=[("alipay", _("支付宝")), ("wechatpay", _("微信支付"))])


class PaymentStartedSerializer(serializers.Serializer):
    out_trade_no = serializers.CharField()
    channel = serializers.CharField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    expires_at = serializers.DateTimeField()
    pay_url = serializers.CharField(required=False)
    code_url = serializers.CharField(required=False)
