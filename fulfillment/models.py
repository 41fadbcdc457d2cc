"""Fulfillment: parcels (Shipment) from one warehouse each, their lines, pick waves, carrier
tracking (the push inbox and the normalised events), the subscription outbox, logistics
exceptions and the warehouse API keys.

Transitions change only the shipment's own fields; fulfillment.services does the rest
(locks, stock, the order's status, the timeline, messages).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, FSMModelMixin, transition
from rest_framework_api_key.models import AbstractAPIKey

MONEY = {"max_digits": 12, "decimal_places": 2}


class Carrier(models.TextChoices):
    """Kuaidi100's company codes (the tracking provider's), with their Chinese names."""

    SHUNFENG = "shunfeng", _("顺丰速运")
    JD = "jd", _("京东物流")
    EMS = "ems", _("EMS")
    YOUZHENG = "youzhengguonei", _("邮政快递包裹")
    ZHONGTONG = "zhongtong", _("中通快递")
    YUANTONG = "yuantong", _("圆通速递")
    YUNDA = "yunda", _("韵达快递")
    SHENTONG = "shentong", _("申通快递")
    JTEXPRESS = "jtexpress", _("极兔速递")
    DEBANG = "debangkuaidi", _("德邦快递")
    SANDBOX = "sandbox", _("沙箱快递（测试）")


# Tracking-number formats, loose enough for every real number we have seen and strict enough
# to refuse "1" or a phone number typed into the wrong box.
TRACKING_FORMATS: dict[str, re.Pattern[str]] = {
    Carrier.SHUNFENG: re.compile(r"^SF\d{10,15}$"),
    Carrier.JD: re.compile(r"^JD[A-Z0-9]{11,14}$"),
    Carrier.EMS: re.compile(r"^(E[A-Z]\d{9}[A-Z]{2}|1\d{12})$"),
    Carrier.YOUZHENG: re.compile(r"^\d{13}$"),
    Carrier.ZHONGTONG: re.compile(r"^7\d{11,14}$"),
    Carrier.YUANTONG: re.compile(r"^YT\d{13,15}$"),
    Carrier.YUNDA: re.compile(r"^\d{13,15}$"),
    Carrier.SHENTONG: re.compile(r"^77\d{11,13}$"),
    Carrier.JTEXPRESS: re.compile(r"^JT\d{13}$"),
    Carrier.DEBANG: re.compile(r"^(DPK)?\d{9,15}$"),
    Carrier.SANDBOX: re.compile(r"^SB\d{10,14}$"),
}


class ShipmentStatus(models.TextChoices):
    PENDING = "pending", _("待拣货")
    PICKING = "picking", _("拣货中")
    PACKED = "packed", _("已打包")
    SHIPPED = "shipped", _("已发货")
    DELIVERED = "delivered", _("已签收")
    EXCEPTION = "exception", _("物流异常")
    REFUSED = "refused", _("拒签")
    RETURNED = "returned", _("已退回")
    CANCELLED = "cancelled", _("已取消")


SS = ShipmentStatus
OPEN_STATUSES = [SS.PENDING, SS.PICKING, SS.PACKED]
# A parcel in any of these left the warehouse with its units.
SHIPPED_STATUSES = [SS.SHIPPED, SS.DELIVERED, SS.EXCEPTION, SS.REFUSED, SS.RETURNED]


class TrackingState(models.TextChoices):
    """Kuaidi100's lastResult.state, normalised. `rank` below says which may follow which."""

    IN_TRANSIT = "in_transit", _("在途")
    PICKED_UP = "picked_up", _("揽收")
    PROBLEM = "problem", _("疑难")
    DELIVERED = "delivered", _("签收")
    RETURNED_SIGNED = "returned_signed", _("退签")
    OUT_FOR_DELIVERY = "out_for_delivery", _("派件")
    RETURNING = "returning", _("退回")
    TRANSFERRED = "transferred", _("转投")
    REFUSED = "refused", _("拒签")


class ShipmentKind(models.TextChoices):
    ORDER = "order", _("订单发货")
    REPLACEMENT = "replacement", _("售后补发")
    RETURN = "return", _("买家退货")


class PickWave(models.Model):
    """A batch of shipments of one warehouse picked together from one printed pick list."""

    wave_no = models.CharField(_("波次号"), max_length=32, unique=True)
    warehouse = models.ForeignKey(
        "inventory.Warehouse", on_delete=models.PROTECT, related_name="pick_waves", verbose_name=_("仓库")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("创建人"),
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("拣货波次")
        verbose_name_plural = _("拣货波次")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.wave_no


class Shipment(ConcurrentTransitionMixin, FSMModelMixin, models.Model):
    """One parcel from one warehouse. Its lines may belong to several orders of one customer
    and address (合单); each order's status follows its own lines.
    """

    shipment_no = models.CharField(_("包裹号"), max_length=32, unique=True)
    warehouse = models.ForeignKey(
        "inventory.Warehouse", on_delete=models.PROTECT, related_name="shipments", verbose_name=_("发货仓")
    )
    status = FSMField(_("状态"), max_length=16, choices=ShipmentStatus.choices, default=SS.PENDING, protected=True)
    kind = models.CharField(_("类型"), max_length=16, choices=ShipmentKind.choices, default=ShipmentKind.ORDER)
    customer_mobile = models.CharField(_("顾客手机"), max_length=20, db_index=True)
    is_cod = models.BooleanField(_("货到付款"), default=False)
    cod_amounts = models.JSONField(_("代收货款（按订单）"), default=dict, blank=True)
    wave = models.ForeignKey(
        PickWave, on_delete=models.PROTECT, null=True, blank=True, related_name="shipments", verbose_name=_("拣货波次")
    )
    carrier = models.CharField(_("承运商"), max_length=32, choices=Carrier.choices, blank=True)
    tracking_no = models.CharField(_("运单号"), max_length=64, blank=True)
    tracking_state = models.CharField(_("物流状态"), max_length=20, choices=TrackingState.choices, blank=True)
    allocation = models.JSONField(_("分仓决策"), default=dict, blank=True)
    split_from = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("拆自")
    )
    merged_into = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("并入")
    )
    ship_by = models.DateTimeField(_("最晚发货时间"), null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    picking_at = models.DateTimeField(_("开始拣货"), null=True, blank=True)
    packed_at = models.DateTimeField(_("打包时间"), null=True, blank=True)
    shipped_at = models.DateTimeField(_("发货时间"), null=True, blank=True)
    picked_up_at = models.DateTimeField(_("揽收时间"), null=True, blank=True)
    last_tracking_at = models.DateTimeField(_("最近物流更新"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("签收时间"), null=True, blank=True)
    returned_at = models.DateTimeField(_("退回入库时间"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("取消时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("包裹")
        verbose_name_plural = _("包裹（发货单）")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["warehouse", "status", "created_at"], name="shipment_wh_status_idx"),
            models.Index(fields=["carrier", "tracking_no"], name="shipment_tracking_idx"),
            models.Index(fields=["status", "last_tracking_at"], name="shipment_status_tracked_idx"),
        ]
        constraints = [
            # One live parcel per (carrier, tracking number): a push finds exactly one shipment.
            models.UniqueConstraint(
                fields=["carrier", "tracking_no"],
                condition=~Q(tracking_no="") & ~Q(status="cancelled"),
                name="shipment_unique_tracking",
            ),
        ]
        permissions = [
            ("pick_shipment", _("可拣货、验货、打包")),
            ("merge_shipment", _("可合并包裹（合单）")),
            ("correct_tracking", _("可更正运单号")),
            ("import_shipments", _("可批量导入发货")),
        ]

    def __str__(self) -> str:
        return self.shipment_no

    # --- transitions: change only this row's fields -----------------------------

    @transition(field=status, source=SS.PENDING, target=SS.PICKING)
    def start_picking(self, *, wave: PickWave, at) -> None:
        self.wave = wave
        self.picking_at = at

    @transition(field=status, source=SS.PICKING, target=SS.PACKED)
    def pack(self, *, at) -> None:
        self.packed_at = at

    @transition(field=status, source=[SS.PENDING, SS.PICKING, SS.PACKED], target=SS.SHIPPED)
    def ship(self, *, carrier: str, tracking_no: str, at) -> None:
        self.carrier = carrier
        self.tracking_no = tracking_no
        self.shipped_at = at

    @transition(field=status, source=[SS.SHIPPED, SS.EXCEPTION], target=SS.DELIVERED)
    def deliver(self, *, at) -> None:
        self.delivered_at = at

    @transition(field=status, source=[SS.SHIPPED], target=SS.EXCEPTION)
    def flag_exception(self) -> None:
        pass

    @transition(field=status, source=[SS.EXCEPTION], target=SS.SHIPPED)
    def clear_exception(self) -> None:
        pass

    @transition(field=status, source=[SS.SHIPPED, SS.EXCEPTION], target=SS.REFUSED)
    def refuse(self) -> None:
        pass

    @transition(field=status, source=[SS.SHIPPED, SS.EXCEPTION, SS.REFUSED], target=SS.RETURNED)
    def return_to_sender(self, *, at) -> None:
        self.returned_at = at

    @transition(field=status, source=OPEN_STATUSES, target=SS.CANCELLED)
    def cancel(self, *, at, merged_into: Shipment | None = None) -> None:
        self.cancelled_at = at
        self.merged_into = merged_into

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class ShipmentLine(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.PROTECT, related_name="lines", verbose_name=_("包裹"))
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="+", verbose_name=_("订单"))
    order_line = models.ForeignKey(
        "orders.OrderLine", on_delete=models.PROTECT, related_name="shipment_lines", verbose_name=_("订单行")
    )
    quantity = models.PositiveIntegerField(_("数量"))
    packed_quantity = models.PositiveIntegerField(_("已验货数量"), default=0)
    # An exchange for another spec ships another SKU against the order line; empty: the line's own.
    sku = models.ForeignKey(
        "inventory.Sku", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("实发商品")
    )

    class Meta:
        verbose_name = _("包裹明细")
        verbose_name_plural = _("包裹明细")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="shipment_line_quantity_positive"),
            models.CheckConstraint(
                condition=Q(packed_quantity__lte=models.F("quantity")), name="shipment_line_packed_le_quantity"
            ),
            models.UniqueConstraint(fields=["shipment", "order_line"], name="shipment_line_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.shipment_id}:{self.order_line_id}x{self.quantity}"

    @property
    def item(self):
        """The SKU in the parcel: the order line's, or the one an exchange ships instead."""
        return self.sku if self.sku_id else self.order_line.sku

    @property
    def item_code(self) -> str:
        return self.item.code


class TrackingSubscription(models.Model):
    """Outbox row: subscribe (carrier, tracking number) at the tracking provider, after commit;
    a periodic job re-delivers the ones left pending.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("待订阅")
        SUBSCRIBED = "subscribed", _("已订阅")
        FAILED = "failed", _("订阅失败")

    shipment = models.ForeignKey(
        Shipment, on_delete=models.PROTECT, related_name="subscriptions", verbose_name=_("包裹")
    )
    carrier = models.CharField(_("承运商"), max_length=32)
    tracking_no = models.CharField(_("运单号"), max_length=64)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("尝试次数"), default=0)
    last_error = models.CharField(_("最近错误"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    subscribed_at = models.DateTimeField(_("订阅时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("物流订阅")
        verbose_name_plural = _("物流订阅")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="tracking_sub_status_idx")]

    def __str__(self) -> str:
        return f"{self.carrier}:{self.tracking_no}"


class TrackingPush(models.Model):
    """The raw inbox of the tracking provider's pushes, kept whatever happens to them."""

    class Status(models.TextChoices):
        APPLIED = "applied", _("已处理")
        DUPLICATE = "duplicate", _("重复")
        REJECTED = "rejected", _("签名错误")
        UNMATCHED = "unmatched", _("未找到包裹")

    provider = models.CharField(_("服务商"), max_length=16, default="kuaidi100")
    param = models.TextField(_("原始 param"))
    sign = models.CharField(_("签名"), max_length=64, blank=True)
    digest = models.CharField(_("内容摘要"), max_length=64, db_index=True)
    status = models.CharField(_("结果"), max_length=16, choices=Status.choices)
    shipment = models.ForeignKey(
        Shipment, on_delete=models.PROTECT, null=True, blank=True, related_name="pushes", verbose_name=_("包裹")
    )
    events_added = models.PositiveIntegerField(_("新增轨迹"), default=0)
    received_at = models.DateTimeField(_("接收时间"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("物流推送")
        verbose_name_plural = _("物流推送（收件箱）")
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider} {self.status} {self.received_at:%Y-%m-%d %H:%M}"


class TrackingEvent(models.Model):
    """One scan of a parcel (a line of lastResult.data), deduplicated on (shipment, time, text)."""

    shipment = models.ForeignKey(
        Shipment, on_delete=models.PROTECT, related_name="tracking_events", verbose_name=_("包裹")
    )
    time = models.DateTimeField(_("时间"))
    state = models.CharField(_("状态"), max_length=20, choices=TrackingState.choices, blank=True)
    context = models.CharField(_("描述"), max_length=500)
    area = models.CharField(_("地区"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("接收时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("物流轨迹")
        verbose_name_plural = _("物流轨迹")
        ordering = ["time", "id"]
        constraints = [
            models.UniqueConstraint(fields=["shipment", "time", "context"], name="tracking_event_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M} {self.context}"


class LogisticsException(models.Model):
    """A parcel that needs a person: 疑难, 拒签, 退回, no pickup, no update. Customer service
    owns it until it is resolved with an outcome.
    """

    class Kind(models.TextChoices):
        PROBLEM = "problem", _("疑难件")
        REFUSED = "refused", _("拒签")
        RETURNED = "returned", _("退回")
        NO_PICKUP = "no_pickup", _("发货后未揽收")
        STALE = "stale", _("物流长时间未更新")
        ABORTED = "aborted", _("物流订阅中止")

    class Outcome(models.TextChoices):
        RESHIP = "reship", _("重新发货")
        INTERCEPT = "intercept", _("拦截")
        CONTACT_CUSTOMER = "contact_customer", _("已联系顾客")
        CARRIER_CLAIM = "carrier_claim", _("向快递索赔")
        CLOSED = "closed", _("关闭（无需处理）")

    shipment = models.ForeignKey(Shipment, on_delete=models.PROTECT, related_name="exceptions", verbose_name=_("包裹"))
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices)
    last_event = models.CharField(_("最近轨迹"), max_length=500, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("负责人"),
    )
    opened_at = models.DateTimeField(_("发现时间"), auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(_("处理时间"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("处理人"),
    )
    outcome = models.CharField(_("处理结果"), max_length=20, choices=Outcome.choices, blank=True)
    note = models.CharField(_("说明"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("物流异常")
        verbose_name_plural = _("物流异常")
        ordering = ["-opened_at", "-id"]
        constraints = [
            # At most one open exception of a kind per parcel: the clock may look twice.
            models.UniqueConstraint(
                fields=["shipment", "kind"], condition=Q(resolved_at__isnull=True), name="logistics_exception_open_once"
            ),
        ]
        permissions = [("resolve_exception", _("可处理物流异常"))]

    def __str__(self) -> str:
        return f"{self.shipment_id} {self.kind}"


class WarehouseAPIKey(AbstractAPIKey):
    """A hashed API key for a WMS or handheld scanner; each belongs to one warehouse."""

    warehouse = models.ForeignKey(
        "inventory.Warehouse", on_delete=models.PROTECT, related_name="api_keys", verbose_name=_("仓库")
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("仓库 API 密钥")
        verbose_name_plural = _("仓库 API 密钥")
