from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, FSMModelMixin, transition
from rest_framework_api_key.models import AbstractAPIKey

ZERO = Decimal("0.00")
MONEY = {"max_digits": 12, "decimal_places": 2}


class PaymentMethod(models.TextChoices):
    ALIPAY = "alipay", _("支付宝")
    WECHATPAY = "wechatpay", _("微信支付")
    COD = "cod", _("货到付款")
    BANK_TRANSFER = "bank_transfer", _("对公转账")


def all_payment_methods() -> list[str]:
    return list(PaymentMethod.values)


class Storefront(models.Model):
    """A shop front (own site, app, mini-program, marketplace connector) that posts orders."""

    code = models.SlugField(_("编码"), max_length=64, unique=True)
    name = models.CharField(_("名称"), max_length=100)
    allowed_payment_methods = models.JSONField(_("允许的支付方式"), default=all_payment_methods)
    active = models.BooleanField(_("启用"), default=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("店铺")
        verbose_name_plural = _("店铺")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class StorefrontAPIKey(AbstractAPIKey):
    """A hashed API key; each belongs to exactly one storefront."""

    storefront = models.ForeignKey(
        Storefront,
        on_delete=models.PROTECT,
        related_name="api_keys",
        verbose_name=_("店铺"),
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("店铺 API 密钥")
        verbose_name_plural = _("店铺 API 密钥")


class Coupon(models.Model):
    class Kind(models.TextChoices):
        THRESHOLD = "threshold", _("满减（一次）")
        EVERY_THRESHOLD = "every_threshold", _("每满减")
        PERCENT = "percent", _("折扣（封顶）")

    code = models.CharField(_("券码"), max_length=64, unique=True)
    name = models.CharField(_("名称"), max_length=100)
    kind = models.CharField(_("类型"), max_length=20, choices=Kind.choices)
    threshold = models.DecimalField(_("门槛金额"), default=ZERO, **MONEY)
    reduction = models.DecimalField(_("减免金额"), default=ZERO, **MONEY)
    percent_off = models.DecimalField(_("折扣百分比"), max_digits=5, decimal_places=2, default=ZERO)
    max_discount = models.DecimalField(_("最高优惠"), null=True, blank=True, **MONEY)
    valid_from = models.DateTimeField(_("生效时间"), null=True, blank=True)
    valid_until = models.DateTimeField(_("失效时间"), null=True, blank=True)
    usage_limit = models.PositiveIntegerField(_("可用次数"), null=True, blank=True, help_text=_("留空为不限"))
    used_count = models.PositiveIntegerField(_("已用次数"), default=0)
    active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("优惠券")
        verbose_name_plural = _("优惠券")
        constraints = [
            models.CheckConstraint(
                condition=Q(usage_limit__isnull=True) | Q(used_count__lte=models.F("usage_limit")),
                name="coupon_not_overused",
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("待付款")
    PAID = "paid", _("已付款")
    AWAITING_SHIPMENT = "awaiting_shipment", _("待发货")
    SHIPPED = "shipped", _("已发货")
    COMPLETED = "completed", _("已完成")
    CANCELLED = "cancelled", _("已取消")


class OrderType(models.TextChoices):
    NORMAL = "normal", _("普通订单")
    PROMO = "promo", _("促销订单")
    CUSTOM = "custom", _("定制订单")


class CancelReason(models.TextChoices):
    CUSTOMER_CHANGED_MIND = "changed_mind", _("不想要了")
    WRONG_INFO = "wrong_info", _("信息填写错误")
    DUPLICATE = "duplicate", _("重复下单")
    TIMEOUT = "timeout", _("超时未支付")
    OUT_OF_STOCK = "out_of_stock", _("缺货")
    ADDRESS_ISSUE = "address_issue", _("地址无法送达")
    RISK = "risk", _("风控拦截")
    REFUSED = "refused", _("拒收退回")
    OTHER = "other", _("其他")


# Reasons only the system gives: the timeout sweep, a refused cash-on-delivery parcel.
SYSTEM_CANCEL_REASONS = [CancelReason.TIMEOUT, CancelReason.REFUSED]

# Reasons a customer may give through the storefront API; the rest are for staff and jobs.
CUSTOMER_CANCEL_REASONS = [
    CancelReason.CUSTOMER_CHANGED_MIND,
    CancelReason.WRONG_INFO,
    CancelReason.DUPLICATE,
    CancelReason.OTHER,
]


class FulfillmentStatus(models.TextChoices):
    UNFULFILLED = "unfulfilled", _("未发货")
    PARTIALLY_SHIPPED = "partially_shipped", _("部分发货")
    SHIPPED = "shipped", _("已全部发货")
    DELIVERED = "delivered", _("已签收")


class ReviewFlag(models.TextChoices):
    LARGE_AMOUNT = "large_amount", _("大额订单人工复核")
    RISK = "risk", _("风控")
    REMARK = "remark", _("备注待阅")
    ADDRESS = "address", _("地址问题")
    MANUAL = "manual", _("手动录入待复核")


S = OrderStatus
BEFORE_SHIPMENT = [S.PENDING_PAYMENT, S.PAID, S.AWAITING_SHIPMENT]


def has_no_review_flags(order: Order) -> bool:
    return not order.review_flags


def is_cash_on_delivery(order: Order) -> bool:
    return order.payment_method == PaymentMethod.COD


def collected_unless_cod(order: Order) -> bool:
    """A cash-on-delivery order is never completed with nothing collected."""
    return order.payment_method != PaymentMethod.COD or order.paid_total > ZERO


def cod_with_nothing_collected(order: Order) -> bool:
    return order.payment_method == PaymentMethod.COD and order.paid_total == ZERO


def closed_unpaid_by_timeout(order: Order) -> bool:
    """Only an order the timeout closed before any money arrived may be revived by a late payment."""
    return order.cancel_reason == CancelReason.TIMEOUT and order.paid_total == ZERO and order.refunded_total == ZERO


class Order(ConcurrentTransitionMixin, FSMModelMixin, models.Model):
    order_no = models.CharField(_("订单号"), max_length=32, unique=True)
    storefront = models.ForeignKey(
        Storefront,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("店铺"),
        # order_unique_external_id (storefront, external_id) serves every lookup by storefront.
        # A second index on storefront alone cost every insert and, with stale statistics, lured
        # the planner into the replay check scanning all of a storefront's orders.
        db_index=False,
    )
    external_id = models.CharField(_("外部单号"), max_length=64)
    request_fingerprint = models.CharField(_("请求指纹"), max_length=64, editable=False)
    order_type = models.CharField(
        _("订单类型"),
        max_length=16,
        choices=OrderType.choices,
        default=OrderType.NORMAL,
    )
    payment_method = models.CharField(_("支付方式"), max_length=16, choices=PaymentMethod.choices)
    status = FSMField(
        _("状态"),
        max_length=32,
        choices=OrderStatus.choices,
        default=S.PENDING_PAYMENT,
        protected=True,
    )
    fulfillment_status = models.CharField(
        _("发货进度"),
        max_length=20,
        choices=FulfillmentStatus.choices,
        default=FulfillmentStatus.UNFULFILLED,
        db_default=FulfillmentStatus.UNFULFILLED,
    )
    # An open after-sales request holds the receipt auto-confirmation (written by aftersales).
    aftersale_open = models.BooleanField(_("售后处理中"), default=False, db_default=False)

    # customer snapshot
    customer_name = models.CharField(_("顾客姓名"), max_length=64)
    customer_mobile = models.CharField(_("顾客手机"), max_length=20, db_index=True)
    customer_email = models.EmailField(_("顾客邮箱"), blank=True)
    customer_member_id = models.CharField(_("会员号"), max_length=64, blank=True, db_index=True)

    # shipping address snapshot
    receiver = models.CharField(_("收货人"), max_length=64)
    receiver_phone = models.CharField(_("收货电话"), max_length=20)
    province = models.CharField(_("省"), max_length=32)
    city = models.CharField(_("市"), max_length=32)
    district = models.CharField(_("区/县"), max_length=32)
    address_detail = models.CharField(_("详细地址"), max_length=200)
    postcode = models.CharField(_("邮编"), max_length=6, blank=True)

    # money
    goods_total = models.DecimalField(_("商品金额"), **MONEY)
    shipping_fee = models.DecimalField(_("运费"), **MONEY)
    discount_total = models.DecimalField(_("优惠金额"), **MONEY)
    payable_total = models.DecimalField(_("应付金额"), **MONEY)
    paid_total = models.DecimalField(_("已付金额"), default=ZERO, **MONEY)
    refunded_total = models.DecimalField(_("已退金额"), default=ZERO, **MONEY)
    coupon = models.ForeignKey(
        Coupon,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="orders",
        verbose_name=_("优惠券"),
    )

    payment_deadline = models.DateTimeField(_("付款截止时间"))
    remark = models.CharField(_("顾客备注"), max_length=500, blank=True)
    review_flags = models.JSONField(_("复核标记"), default=list, blank=True)
    cancel_reason = models.CharField(_("取消原因"), max_length=32, choices=CancelReason.choices, blank=True)
    cancel_note = models.CharField(_("取消说明"), max_length=200, blank=True)
    carrier = models.CharField(_("承运商"), max_length=64, blank=True)
    tracking_no = models.CharField(_("运单号"), max_length=64, blank=True)

    created_at = models.DateTimeField(_("下单时间"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    paid_at = models.DateTimeField(_("付款时间"), null=True, blank=True)
    approved_at = models.DateTimeField(_("审核时间"), null=True, blank=True)
    shipped_at = models.DateTimeField(_("发货时间"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("签收时间"), null=True, blank=True)
    completed_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("取消时间"), null=True, blank=True)

    # 挂起: a held order is not allocated, picked or merged until released (orders.holds).
    held_at = models.DateTimeField(_("挂起时间"), null=True, blank=True)
    hold_reason = models.CharField(_("挂起原因"), max_length=200, blank=True, db_default="")
    held_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("挂起人"),
    )
    # 手动录入: who entered the order (orders.manual); the second reviewer must be someone else.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("录入人"),
    )

    class Meta:
        verbose_name = _("订单")
        verbose_name_plural = _("订单")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["storefront", "external_id"], name="order_unique_external_id"),
            models.CheckConstraint(condition=Q(payable_total__gte=0), name="order_payable_non_negative"),
            models.CheckConstraint(
                condition=Q(refunded_total__lte=models.F("paid_total")),
                name="order_refund_le_paid",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "payment_deadline"]),
            # The timeout sweep's claim: only unpaid orders, in deadline order, whatever the statistics say.
            models.Index(
                fields=["payment_deadline"], condition=Q(status="pending_payment"), name="order_unpaid_deadline_idx"
            ),
            models.Index(fields=["customer_mobile", "cancel_reason", "cancelled_at"], name="order_customer_closes_idx"),
            # The admin at a million orders: a status filter in list order, a search by phone.
            models.Index(fields=["status", "-created_at", "-id"], name="order_status_created_idx"),
            models.Index(fields=["-created_at", "-id"], name="order_created_idx"),
            models.Index(fields=["receiver_phone"], name="order_receiver_phone_idx"),
            # The 挂起 filter and the allocation clock's exclusion read only the few held orders.
            models.Index(fields=["held_at"], condition=Q(held_at__isnull=False), name="order_held_idx"),
            # 待人工审核: the few unpaid or paid orders with an open review flag, in list order.
            models.Index(
                fields=["-created_at", "-id"],
                condition=Q(status__in=["pending_payment", "paid"]) & ~Q(review_flags=[]),
                name="order_review_queue_idx",
            ),
        ]
        permissions = [
            ("review_order", _("可审核订单（含需复核的订单）")),
            ("cancel_order", _("可取消订单（已付款的将原路退款）")),
            ("confirm_cod", _("可核实货到付款订单")),
            ("ship_order", _("可发货")),
            ("complete_order", _("可代顾客确认收货")),
            ("change_address", _("可修改收货地址")),
            ("view_customer_pii", _("可查看顾客完整手机号和地址")),
            ("hold_order", _("可挂起和释放订单")),
            ("add_manual_order", _("可手动录入订单")),
            ("review_manual_order", _("可复核他人手动录入的订单")),
        ]

    def __str__(self) -> str:
        return self.order_no

    # --- transitions: change only this row's fields; services do the rest ----

    @transition(
        field=status,
        source=S.PENDING_PAYMENT,
        target=S.PAID,
        custom={"admin": False, "label": _("付款")},
    )
    def pay(self, *, amount: Decimal, at) -> None:
        self.paid_total += amount
        self.paid_at = at

    @transition(
        field=status,
        source=S.PAID,
        target=S.AWAITING_SHIPMENT,
        conditions=[has_no_review_flags],
        custom={"admin": True, "label": _("审核通过")},
        permission="orders.review_order",  # hides the admin button; the service checks it too
    )
    def approve(self, *, at) -> None:
        self.approved_at = at

    @transition(
        field=status,
        source=S.PENDING_PAYMENT,
        target=S.AWAITING_SHIPMENT,
        conditions=[is_cash_on_delivery],
        custom={"admin": True, "label": _("货到付款核实")},
        permission="orders.confirm_cod",  # hides the admin button; the service checks it too
    )
    def confirm_cod(self, *, at) -> None:
        self.approved_at = at

    @transition(
        field=status,
        source=S.AWAITING_SHIPMENT,
        target=S.SHIPPED,
        custom={"admin": False, "label": _("发货")},
    )
    def ship(self, *, at) -> None:
        """Every unit is in a parcel that left (or was cancelled): fulfillment moves the order."""
        self.shipped_at = self.shipped_at or at

    @transition(
        field=status,
        source=S.SHIPPED,
        target=S.COMPLETED,
        conditions=[collected_unless_cod],
        custom={"admin": True, "label": _("确认收货")},
        permission="orders.complete_order",  # hides the admin button; the service checks it too
    )
    def complete(self, *, at) -> None:
        self.completed_at = at

    @transition(
        field=status,
        source=BEFORE_SHIPMENT,
        target=S.CANCELLED,
        custom={
            "admin": True,
            "label": _("取消订单"),
            "form": "orders.forms.CancelForm",
        },
        permission="orders.cancel_order",
    )
    def cancel(self, *, reason: str, note: str = "", at) -> None:
        self.cancel_reason = reason
        self.cancel_note = note
        self.cancelled_at = at

    @transition(
        field=status,
        source=S.CANCELLED,
        target=S.PAID,
        conditions=[closed_unpaid_by_timeout],
        custom={"admin": False, "label": _("迟到付款恢复")},
    )
    def revive(self, *, amount: Decimal, at) -> None:
        self.paid_total += amount
        self.paid_at = at
        self.cancelled_at = None

    @transition(
        field=status,
        source=S.SHIPPED,
        target=S.CANCELLED,
        conditions=[cod_with_nothing_collected],
        custom={"admin": False, "label": _("拒收退回")},
    )
    def cancel_refused(self, *, at) -> None:
        """A cash-on-delivery parcel the customer refused came back: nothing was paid."""
        self.cancel_reason = CancelReason.REFUSED
        self.cancelled_at = at

    @property
    def is_before_shipment(self) -> bool:
        return self.status in BEFORE_SHIPMENT

    @property
    def address_text(self) -> str:
        return f"{self.province}{self.city}{self.district}{self.address_detail}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="lines", verbose_name=_("订单"))
    sku = models.ForeignKey(
        "inventory.Sku",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("SKU"),
    )
    sku_code = models.CharField(_("SKU 编码"), max_length=64)
    name = models.CharField(_("商品名称"), max_length=200)
    spec = models.CharField(_("规格"), max_length=200, blank=True)
    unit_price = models.DecimalField(_("单价"), **MONEY)
    quantity = models.PositiveIntegerField(_("数量"))
    line_total = models.DecimalField(_("小计"), **MONEY)
    discount = models.DecimalField(_("分摊优惠"), default=ZERO, **MONEY)
    cancelled_quantity = models.PositiveIntegerField(_("已取消数量"), default=0, db_default=0)

    class Meta:
        verbose_name = _("订单行")
        verbose_name_plural = _("订单行")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(discount__lte=models.F("line_total")),
                name="line_discount_le_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku_code} x{self.quantity}"


class CustomerRiskFlag(models.Model):
    """信用: a customer (by mobile) who let too many orders close unpaid may not use cash on delivery."""

    mobile = models.CharField(_("顾客手机"), max_length=20, unique=True)
    active = models.BooleanField(_("生效中"), default=True, db_index=True)
    timeout_closes = models.PositiveIntegerField(_("窗口内超时关单数"), default=0)
    flagged_at = models.DateTimeField(_("标记时间"))
    reason = models.CharField(_("原因"), max_length=200)
    cleared_at = models.DateTimeField(_("解除时间"), null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("解除人"),
    )
    clear_reason = models.CharField(_("解除原因"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("顾客风险标记")
        verbose_name_plural = _("顾客风险标记（信用）")
        ordering = ["-flagged_at"]
        permissions = [("clear_riskflag", _("可解除顾客风险标记"))]

    def __str__(self) -> str:
        return self.mobile


class ActorKind(models.TextChoices):
    STAFF = "staff", _("员工")
    STOREFRONT = "storefront", _("店铺")
    GATEWAY = "gateway", _("支付网关")
    SYSTEM = "system", _("系统任务")


class OrderEvent(models.Model):
    """One entry of the order's append-only timeline. Written only by `order_event_record`."""

    class Type(models.TextChoices):
        CREATED = "created", _("下单")
        PAY = "pay", _("付款")
        APPROVE = "approve", _("审核通过")
        CONFIRM_COD = "confirm_cod", _("货到付款核实")
        SHIP = "ship", _("发货")
        COMPLETE = "complete", _("确认收货")
        CANCEL = "cancel", _("取消")
        REVIVE = "revive", _("迟到付款恢复")
        ADDRESS_CHANGED = "address_changed", _("修改地址")
        REVIEW_CLEARED = "review_cleared", _("人工复核通过")
        REFUND_REQUESTED = "refund_requested", _("发起退款")
        REFUND_APPROVED = "refund_approved", _("退款已审批")
        REFUND_SUCCEEDED = "refund_succeeded", _("退款成功")
        REFUND_FAILED = "refund_failed", _("退款失败")
        PAYMENT_STARTED = "payment_started", _("发起支付")
        PAYMENT_RECEIVED = "payment_received", _("收到款项（未改变状态）")
        CASE_OPENED = "case_opened", _("转财务复核")
        MANUAL_REMINDER = "manual_reminder", _("人工催付")
        REMINDER_SENT = "reminder_sent", _("发送提醒")
        ALLOCATED = "allocated", _("分仓")
        SHIPMENT_SHIPPED = "shipment_shipped", _("包裹发出")
        SHIPMENTS_MERGED = "shipments_merged", _("合单")
        TRACKING_CORRECTED = "tracking_corrected", _("更正运单号")
        DELIVERED = "delivered", _("签收")
        LOGISTICS_EXCEPTION = "logistics_exception", _("物流异常")
        RETURNED = "returned", _("退回入库")
        CANCEL_REFUSED = "cancel_refused", _("拒收退回")
        AFTERSALE_OPENED = "aftersale_opened", _("申请售后")
        AFTERSALE_APPROVED = "aftersale_approved", _("同意售后")
        AFTERSALE_REJECTED = "aftersale_rejected", _("拒绝售后")
        AFTERSALE_RETURN_SHIPPED = "aftersale_return_shipped", _("买家寄回")
        AFTERSALE_INSPECTED = "aftersale_inspected", _("退货验收")
        AFTERSALE_RESHIPPED = "aftersale_reshipped", _("售后补发")
        AFTERSALE_CLOSED = "aftersale_closed", _("售后结束")
        UNITS_CANCELLED = "units_cancelled", _("部分商品取消")
        SHIP_OVERDUE = "ship_overdue", _("超时未发货")
        MEMO = "memo", _("内部备注")
        HELD = "held", _("挂起")
        RELEASED = "released", _("释放")

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events", verbose_name=_("订单"))
    type = models.CharField(_("事件"), max_length=32, choices=Type.choices)
    from_status = models.CharField(_("原状态"), max_length=32, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(_("新状态"), max_length=32, choices=OrderStatus.choices, blank=True)
    actor_kind = models.CharField(_("操作方类型"), max_length=16, choices=ActorKind.choices)
    actor_label = models.CharField(_("操作方"), max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("员工"),
    )
    reason = models.CharField(_("原因"), max_length=200, blank=True)
    data = models.JSONField(_("附加信息"), default=dict, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("订单事件")
        verbose_name_plural = _("订单事件")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.type}"


class OrderMemo(models.Model):
    """An internal note on an order (备注订单), so the next agent does not call the customer again.

    Append-only: written only by orders.memos.order_memo_add, never changed or deleted, and
    never in the storefront API. Each memo also puts a `memo` event on the timeline.
    """

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="memos", verbose_name=_("订单"))
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("作者")
    )
    text = models.TextField(_("内容"), max_length=2000)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("订单备注")
        verbose_name_plural = _("订单备注")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["order", "created_at"], name="ordermemo_order_idx")]

    def __str__(self) -> str:
        return f"{self.order_id} {self.text[:20]}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("An order memo is never changed: add another one.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("An order memo is never deleted.")


class PiiAccess(models.Model):
    """Who revealed a customer's full mobile number and address, on which order, and when.

    Written by orders.services.order_reveal_pii only; 主管 read it in the admin.
    """

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="pii_accesses", verbose_name=_("订单"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("查看人")
    )
    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("个人信息查看记录")
        verbose_name_plural = _("个人信息查看记录")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user_id} {self.order_id}"
