"""Excel (XLSX) and CSV export of the filtered order, refund and after-sales lists
(django-import-export), with customers' mobile numbers and street addresses masked for staff
without orders.view_customer_pii, as on the pages themselves.

The export takes exactly the rows the list shows (its filters and search); importing stays
where each flow put it (shipments, bank transfers, statements), so these admins export only.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from import_export import fields, resources
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV, XLSX

from aftersales.models import Aftersale
from orders.models import Order
from orders.pii import mask_address, mask_mobile
from payments.models import Refund


class MaskedResource(resources.ModelResource):
    """A resource that knows who exports: personal data is masked unless they may see it."""

    def __init__(self, user=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reveal = bool(user is not None and user.has_perm("orders.view_customer_pii"))

    def mobile(self, value: str) -> str:
        return value if self.reveal else mask_mobile(value)

    def address(self, value: str) -> str:
        return value if self.reveal else mask_address(value)


def _field(attribute: str, label) -> fields.Field:
    return fields.Field(attribute=attribute, column_name=label)


class OrderExport(MaskedResource):
    order_no = _field("order_no", _("订单号"))
    storefront = _field("storefront__code", _("店铺"))
    status = fields.Field(column_name=_("状态"))
    fulfillment = fields.Field(column_name=_("发货进度"))
    created_at = _field("created_at", _("下单时间"))
    paid_at = _field("paid_at", _("付款时间"))
    payment_method = fields.Field(column_name=_("支付方式"))
    customer_name = _field("customer_name", _("顾客姓名"))
    customer_mobile = fields.Field(column_name=_("顾客手机"))
    receiver = _field("receiver", _("收货人"))
    receiver_phone = fields.Field(column_name=_("收货电话"))
    address = fields.Field(column_name=_("收货地址"))
    goods_total = _field("goods_total", _("商品金额"))
    discount_total = _field("discount_total", _("优惠金额"))
    shipping_fee = _field("shipping_fee", _("运费"))
    payable_total = _field("payable_total", _("应付金额"))
    paid_total = _field("paid_total", _("已付金额"))
    refunded_total = _field("refunded_total", _("已退金额"))
    carrier = _field("carrier", _("承运商"))
    tracking_no = _field("tracking_no", _("运单号"))

    class Meta:
        model = Order
        fields = export_order = (
            "order_no",
            "storefront",
            "status",
            "fulfillment",
            "created_at",
            "paid_at",
            "payment_method",
            "customer_name",
            "customer_mobile",
            "receiver",
            "receiver_phone",
            "address",
            "goods_total",
            "discount_total",
            "shipping_fee",
            "payable_total",
            "paid_total",
            "refunded_total",
            "carrier",
            "tracking_no",
        )

    def dehydrate_status(self, order: Order) -> str:
        return str(order.get_status_display())

    def dehydrate_fulfillment(self, order: Order) -> str:
        return str(order.get_fulfillment_status_display())

    def dehydrate_payment_method(self, order: Order) -> str:
        return str(order.get_payment_method_display())

    def dehydrate_customer_mobile(self, order: Order) -> str:
        return self.mobile(order.customer_mobile)

    def dehydrate_receiver_phone(self, order: Order) -> str:
        return self.mobile(order.receiver_phone)

    def dehydrate_address(self, order: Order) -> str:
        return f"{order.province}{order.city}{order.district}{self.address(order.address_detail)}"


class RefundExport(MaskedResource):
    out_refund_no = _field("out_refund_no", _("退款单号"))
    order_no = _field("order__order_no", _("订单号"))
    amount = _field("amount", _("退款金额"))
    status = fields.Field(column_name=_("状态"))
    reason = _field("reason", _("退款原因"))
    requested_by = _field("requested_by", _("发起方"))
    created_at = _field("created_at", _("创建时间"))
    approved_at = _field("approved_at", _("审批时间"))
    succeeded_at = _field("succeeded_at", _("退款成功时间"))
    customer_mobile = fields.Field(column_name=_("顾客手机"))

    class Meta:
        model = Refund
        fields = export_order = (
            "out_refund_no",
            "order_no",
            "amount",
            "status",
            "reason",
            "requested_by",
            "created_at",
            "approved_at",
            "succeeded_at",
            "customer_mobile",
        )

    def dehydrate_status(self, refund: Refund) -> str:
        return str(refund.get_status_display())

    def dehydrate_customer_mobile(self, refund: Refund) -> str:
        return self.mobile(refund.order.customer_mobile)


class AftersaleExport(MaskedResource):
    aftersale_no = _field("aftersale_no", _("售后单号"))
    order_no = _field("order__order_no", _("订单号"))
    type = fields.Field(column_name=_("类型"))
    reason = fields.Field(column_name=_("原因"))
    responsibility = fields.Field(column_name=_("责任方"))
    status = fields.Field(column_name=_("状态"))
    refund_amount = _field("refund_amount", _("应退金额"))
    refunded_amount = _field("refunded_amount", _("已退金额"))
    created_at = _field("created_at", _("申请时间"))
    deadline = _field("deadline", _("处理时限"))
    customer_mobile = fields.Field(column_name=_("顾客手机"))

    class Meta:
        model = Aftersale
        fields = export_order = (
            "aftersale_no",
            "order_no",
            "type",
            "reason",
            "responsibility",
            "status",
            "refund_amount",
            "refunded_amount",
            "created_at",
            "deadline",
            "customer_mobile",
        )

    def dehydrate_type(self, aftersale: Aftersale) -> str:
        return str(aftersale.get_type_display())

    def dehydrate_reason(self, aftersale: Aftersale) -> str:
        return str(aftersale.get_reason_display())

    def dehydrate_responsibility(self, aftersale: Aftersale) -> str:
        return str(aftersale.get_responsibility_display())

    def dehydrate_status(self, aftersale: Aftersale) -> str:
        return str(aftersale.get_status_display())

    def dehydrate_customer_mobile(self, aftersale: Aftersale) -> str:
        return self.mobile(aftersale.order.customer_mobile)


class MaskedExportMixin(ExportMixin):
    """The admin's 导出 button: XLSX or CSV of the filtered list, masked for this user."""

    formats = [XLSX, CSV]
    import_export_change_list_template = "admin/console/change_list_export.html"
    export_select_related: tuple[str, ...] = ()

    def get_export_resource_kwargs(self, request, **kwargs):
        return {**super().get_export_resource_kwargs(request, **kwargs), "user": request.user}

    def get_export_queryset(self, request):
        queryset = super().get_export_queryset(request)
        return queryset.select_related(*self.export_select_related) if self.export_select_related else queryset
