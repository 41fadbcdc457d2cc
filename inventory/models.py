from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _


class Sku(models.Model):
    code = models.CharField(_("SKU 编码"), max_length=64, unique=True)
    name = models.CharField(_("商品名称"), max_length=200)
    spec = models.CharField(_("规格"), max_length=200, blank=True, help_text=_("例如：L码 黑色"))
    price = models.DecimalField(
        _("售价"),
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.00"))],
    )
    active = models.BooleanField(_("在售"), default=True)
    bin_location = models.CharField(_("库位"), max_length=32, blank=True, db_default="", help_text=_("例如：A-03-2"))
    barcode = models.CharField(_("条码"), max_length=64, blank=True, db_default="", db_index=True)
    no_reason_return = models.BooleanField(
        _("支持七天无理由退货"), default=True, db_default=True, help_text=_("生鲜、数字商品、定制商品等请取消勾选")
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("SKU")
        verbose_name_plural = _("SKU")
        ordering = ["code"]
        constraints = [models.CheckConstraint(condition=Q(price__gte=0), name="sku_price_non_negative")]

    def __str__(self) -> str:
        return f"{self.code} {self.name} {self.spec}".strip()


class Warehouse(models.Model):
    code = models.CharField(_("仓库编码"), max_length=32, unique=True)
    name = models.CharField(_("仓库名称"), max_length=100)
    active = models.BooleanField(_("启用"), default=True)
    provinces = models.JSONField(
        _("覆盖省份"),
        default=list,
        db_default=[],
        blank=True,
        help_text=_('该仓就近发货的省份，例如 ["浙江省", "上海市"]；分仓时优先选覆盖收货省份的仓'),
    )
    priority = models.PositiveSmallIntegerField(_("优先级"), default=100, db_default=100, help_text=_("数字越小越优先"))

    class Meta:
        verbose_name = _("仓库")
        verbose_name_plural = _("仓库")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class StockLevel(models.Model):
    """On-hand and reserved units of one SKU in one warehouse.

    available = on_hand - reserved. The check constraints make over-reservation and
    negative stock impossible at the database level, whatever the code does.
    """

    sku = models.ForeignKey(
        Sku,
        on_delete=models.PROTECT,
        related_name="stock_levels",
        verbose_name=_("SKU"),
    )
    warehouse = models.ForeignKey(
        Warehouse,
        on_delete=models.PROTECT,
        related_name="stock_levels",
        verbose_name=_("仓库"),
    )
    on_hand = models.IntegerField(_("在库数量"), default=0)
    reserved = models.IntegerField(_("已预占"), default=0)
    defective = models.IntegerField(_("次品（不可售）"), default=0, db_default=0)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("库存")
        verbose_name_plural = _("库存")
        ordering = ["sku__code", "warehouse_id"]
        permissions = [("adjust_stock", _("可调整库存（入库、盘点、报损）"))]
        constraints = [
            models.UniqueConstraint(fields=["sku", "warehouse"], name="stock_unique_sku_warehouse"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stock_reserved_non_negative"),
            models.CheckConstraint(condition=Q(on_hand__gte=F("reserved")), name="stock_not_over_reserved"),
        ]

    def __str__(self) -> str:
        return f"{self.sku.code}@{self.warehouse.code}"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Reservation(models.Model):
    """Units of one order line held in one warehouse.

    active -> released (order cancelled) or consumed (shipped).
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("预占中")
        RELEASED = "released", _("已释放")
        CONSUMED = "consumed", _("已出库")

    order_line = models.ForeignKey(
        "orders.OrderLine",
        on_delete=models.PROTECT,
        related_name="reservations",
        verbose_name=_("订单行"),
    )
    stock_level = models.ForeignKey(
        StockLevel,
        on_delete=models.PROTECT,
        related_name="reservations",
        verbose_name=_("库存"),
    )
    quantity = models.PositiveIntegerField(_("数量"))
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("库存预占")
        verbose_name_plural = _("库存预占")
        # Only active reservations are looked up by status (the admin's filter, a stock row's
        # units on hold); released and consumed ones, almost all of them, are never. A partial
        # index leaves them out, so releasing or consuming one writes no entry into it.
        indexes = [
            models.Index(fields=["stock_level"], condition=Q(status="active"), name="inventory_reservation_active"),
        ]

    def __str__(self) -> str:
        return f"{self.order_line_id}:{self.stock_level_id}x{self.quantity}"


class StockMovement(models.Model):
    """One change of on-hand stock other than reserve / release / consume: who, why, before, after.

    Written only by inventory.services.stock_adjust, in the same transaction as the change,
    under the stock row's lock. Never edited or deleted.
    """

    class Reason(models.TextChoices):
        RECEIVED = "received", _("到货入库")
        OPENING = "opening", _("期初库存")
        COUNT_CORRECTION = "count_correction", _("盘点调整")
        DAMAGED = "damaged", _("报损")
        RETURNED = "returned", _("退货入库")
        OTHER = "other", _("其他")

    stock_level = models.ForeignKey(
        StockLevel, on_delete=models.PROTECT, related_name="movements", verbose_name=_("库存")
    )
    reason = models.CharField(_("原因"), max_length=32, choices=Reason.choices)
    delta = models.IntegerField(_("变动数量"))
    on_hand_before = models.IntegerField(_("变动前在库"))
    on_hand_after = models.IntegerField(_("变动后在库"))
    note = models.CharField(_("备注"), max_length=200, blank=True)
    actor_label = models.CharField(_("操作方"), max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("操作人"),
    )
    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("库存变动")
        verbose_name_plural = _("库存变动")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(on_hand_after=F("on_hand_before") + F("delta")), name="stock_movement_adds_up"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stock_level_id} {self.delta:+d}"
