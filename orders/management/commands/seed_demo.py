"""Demo data for a first look: SKUs with stock, a storefront and key, a superuser,
the staff groups, a coupon, and a few orders in every state. Safe to run again.
"""

from __future__ import annotations

import json
import secrets
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from fulfillment.services import order_allocate, shipment_ship
from inventory.models import Sku, StockLevel, Warehouse
from orders import services
from orders.models import (
    CancelReason,
    Coupon,
    Order,
    OrderStatus,
    Storefront,
    StorefrontAPIKey,
)
from payments.gateways import is_sandbox, notify_url
from payments.sandbox.models import SandboxNotify
from payments.sandbox.services import delivery_headers, sandbox_pay, sandbox_trade_open
from payments.services import payment_receive_notification, payment_start
from workflows.cancellation import order_cancel

CREDENTIALS_FILE = settings.VAR_DIR / "demo-credentials.json"

SKUS = [
    ("TSHIRT-L-BLK", "纯棉圆领T恤", "L码 黑色", "70.00", 500),
    ("TSHIRT-M-WHT", "纯棉圆领T恤", "M码 白色", "70.00", 500),
    ("JEANS-30-BLU", "直筒牛仔裤", "30码 浅蓝", "199.00", 200),
    ("TEA-LONGJING-250", "明前龙井", "250g 礼盒", "388.00", 100),
    ("MUG-CERAMIC", "景德镇陶瓷马克杯", "350ml 青花", "49.90", 300),
    ("LAPTOP-PRO-14", "轻薄笔记本电脑", "14英寸 32G/1T", "12999.00", 20),
]

# One demo user per role (groups come from the migration oms/0001_staff_roles).
DEMO_STAFF = {"kefu": "客服", "cangchu": "仓储", "caiwu": "财务", "yunying": "运营", "zhuguan": "主管"}

CUSTOMERS = [
    ("张小姐", "13800138000", "浙江省", "杭州市", "西湖区", "文三路100号"),
    ("李先生", "13912345678", "广东省", "深圳市", "南山区", "科技园南区8栋"),
    ("王女士", "18600001111", "北京市", "北京市", "朝阳区", "建国路88号"),
    ("陈先生", "15000002222", "上海市", "上海市", "浦东新区", "世纪大道1号"),
]

# (external id, sku lines, payment method, steps to take after creation)
DEMO_ORDERS = [
    ("DEMO-1001", [("TSHIRT-L-BLK", 3)], "alipay", []),
    ("DEMO-1002", [("MUG-CERAMIC", 2)], "wechatpay", []),
    ("DEMO-1003", [("JEANS-30-BLU", 1), ("TSHIRT-M-WHT", 2)], "alipay", ["pay"]),
    (
        "DEMO-1004",
        [("LAPTOP-PRO-14", 1)],
        "alipay",
        ["pay"],
    ),  # large amount: waits in 已付款
    ("DEMO-1005", [("TEA-LONGJING-250", 1)], "cod", ["confirm_cod"]),
    (
        "DEMO-1006",
        [("TSHIRT-L-BLK", 1), ("MUG-CERAMIC", 1)],
        "wechatpay",
        ["pay", "ship"],
    ),
    ("DEMO-1007", [("JEANS-30-BLU", 2)], "alipay", ["pay", "ship", "complete"]),
    ("DEMO-1008", [("TSHIRT-M-WHT", 1)], "alipay", ["cancel"]),
    ("DEMO-1009", [("TEA-LONGJING-250", 2)], "wechatpay", ["pay", "cancel"]),
]


class Command(BaseCommand):
    help = "Create demo SKUs, stock, a storefront and key, a superuser, one demo user per staff role and orders (idempotent)."

    def handle(self, *args, **options):
        if not is_sandbox("alipay"):
            # The paid demo orders are paid at the sandbox cashier, and only a notify our Alipay
            # verifier trusts applies: that is the sandbox's only while it serves the channel.
            raise CommandError(
                "seed_demo pays its demo orders through the sandbox gateway, which does not serve "
                "alipay here: set OMS_SANDBOX_ENABLED=true and leave ALIPAY_APP_ID empty."
            )
        credentials = self._load_credentials()
        with transaction.atomic():
            self._catalogue()
            self._staff(credentials)
            storefront = self._storefront(credentials)
            self._superuser(credentials)
        self._orders(storefront)
        CREDENTIALS_FILE.write_text(json.dumps(credentials, ensure_ascii=False, indent=2))
        counts = {s.label: Order.objects.filter(status=s.value).count() for s in OrderStatus}
        self.stdout.write("Demo orders: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        self.stdout.write(f"Admin login:  {credentials['admin_user']} / {credentials['admin_password']}")
        for username, role in DEMO_STAFF.items():
            self.stdout.write(f"  {role} login:  {username} / {credentials['staff'][username]}")
        self.stdout.write(f"Storefront API key (storefront 'demo'): {credentials['api_key']}")
        self.stdout.write(f"(saved in {CREDENTIALS_FILE})")

    def _load_credentials(self) -> dict[str, str]:
        if CREDENTIALS_FILE.exists():
            return json.loads(CREDENTIALS_FILE.read_text())
        return {}

    def _catalogue(self) -> None:
        main, _ = Warehouse.objects.get_or_create(
            code="HZ01",
            defaults={"name": "杭州主仓", "provinces": ["浙江省", "上海市", "江苏省", "安徽省"], "priority": 10},
        )
        second, _ = Warehouse.objects.get_or_create(
            code="GZ01",
            defaults={
                "name": "广州分仓",
                "provinces": ["广东省", "广西壮族自治区", "福建省", "海南省"],
                "priority": 20,
            },
        )
        for index, (code, name, spec, price, qty) in enumerate(SKUS, start=1):
            sku, _ = Sku.objects.get_or_create(
                code=code,
                defaults={
                    "name": name,
                    "spec": spec,
                    "price": Decimal(price),
                    "bin_location": f"A-{index:02d}-{index % 3 + 1}",
                    "barcode": f"6901234{index:06d}",
                },
            )
            StockLevel.objects.get_or_create(sku=sku, warehouse=main, defaults={"on_hand": qty})
            StockLevel.objects.get_or_create(sku=sku, warehouse=second, defaults={"on_hand": qty // 5})
        Coupon.objects.get_or_create(
            code="FULL200-30",
            defaults={
                "name": "满200减30",
                "kind": Coupon.Kind.THRESHOLD,
                "threshold": Decimal("200"),
                "reduction": Decimal("30"),
            },
        )
        Coupon.objects.get_or_create(
            code="EVERY200-30",
            defaults={
                "name": "每满200减30",
                "kind": Coupon.Kind.EVERY_THRESHOLD,
                "threshold": Decimal("200"),
                "reduction": Decimal("30"),
            },
        )
        Coupon.objects.get_or_create(
            code="OFF10-CAP50",
            defaults={
                "name": "9折 最高减50",
                "kind": Coupon.Kind.PERCENT,
                "percent_off": Decimal("10"),
                "max_discount": Decimal("50"),
            },
        )

    def _staff(self, credentials: dict[str, str]) -> None:
        """One personal account per role, so a newcomer can see what each role may do."""
        User = get_user_model()
        saved = credentials.setdefault("staff", {})
        for username, role in DEMO_STAFF.items():
            user = User.objects.filter(username=username).first()
            if user is None or not saved.get(username) or not user.check_password(saved[username]):
                saved[username] = secrets.token_urlsafe(9)
                user = user or User(username=username, is_staff=True)
                user.set_password(saved[username])
                user.save()
            user.groups.set([Group.objects.get(name=role)])

    def _storefront(self, credentials: dict[str, str]) -> Storefront:
        storefront, _ = Storefront.objects.get_or_create(code="demo", defaults={"name": "演示商城"})
        key_ok = credentials.get("api_key") and StorefrontAPIKey.objects.is_valid(credentials["api_key"])
        if not key_ok:
            _, credentials["api_key"] = StorefrontAPIKey.objects.create_key(name="demo key", storefront=storefront)
        return storefront

    def _superuser(self, credentials: dict[str, str]) -> None:
        User = get_user_model()
        credentials.setdefault("admin_user", "admin")
        user = User.objects.filter(username=credentials["admin_user"]).first()
        saved = credentials.get("admin_password", "")
        # A credentials file left from another database must not print a password that fails.
        if user is None or not saved or not user.check_password(saved):
            credentials["admin_password"] = secrets.token_urlsafe(12)
            user = user or User(username=credentials["admin_user"], email="admin@example.com")
            user.is_staff = user.is_superuser = True
            user.set_password(credentials["admin_password"])
            user.save()

    def _pay_through_sandbox(self, order: Order) -> None:
        """Pay like a customer would: an Alipay attempt, the sandbox cashier's 支付, and the
        sandbox's really signed notify through our real verification path (in-process here,
        since the web server is not up yet; the worker will deliver it again later, which
        our inbox answers as a duplicate).
        """
        payment, _ = payment_start(order=order, channel="alipay", actor=services.Actor.storefront(order.storefront))
        sandbox_trade_open(
            channel="alipay",
            out_trade_no=payment.out_trade_no,
            amount=payment.amount,
            subject=f"订单{order.order_no}",
            time_expire=payment.expires_at,
            notify_url=notify_url("alipay"),
        )
        trade = sandbox_pay(channel="alipay", out_trade_no=payment.out_trade_no)
        for notify in SandboxNotify.objects.filter(trade=trade):
            payment_receive_notification(
                channel="alipay", body=notify.body.encode(), headers=delivery_headers(notify, timezone.now())
            )

    def _orders(self, storefront: Storefront) -> None:
        staff = services.Actor.system("seed_demo")
        for index, (external_id, lines, method, steps) in enumerate(DEMO_ORDERS):
            name, mobile, province, city, district, detail = CUSTOMERS[index % len(CUSTOMERS)]
            payload = services.OrderInput(
                external_id=external_id,
                order_type="normal",
                payment_method=method,
                customer={
                    "name": name,
                    "mobile": mobile,
                    "email": "",
                    "member_id": f"M{1000 + index}",
                },
                shipping_address={
                    "receiver": name,
                    "phone": mobile,
                    "province": province,
                    "city": city,
                    "district": district,
                    "detail": detail,
                    "postcode": "",
                },
                lines=[{"sku": sku, "quantity": qty} for sku, qty in lines],
            )
            order, created = services.order_create(storefront=storefront, payload=payload)
            if not created:
                continue
            for step in steps:
                if step == "pay":
                    self._pay_through_sandbox(order)
                elif step == "confirm_cod":
                    services.order_confirm_cod(order=order, actor=staff)
                elif step == "ship":
                    # Parcels from the allocation; the sandbox carrier moves them when it is on.
                    carrier, prefix = ("sandbox", "SB") if settings.OMS_CARRIER_SANDBOX_ENABLED else ("shunfeng", "SF")
                    for n, shipment in enumerate(order_allocate(order=order)):
                        shipment_ship(
                            shipment=shipment,
                            actor=staff,
                            carrier=carrier,
                            tracking_no=f"{prefix}{order.order_no[-10:]}{n}",
                        )
                elif step == "complete":
                    services.order_complete(order=order, actor=staff)
                elif step == "cancel":
                    order_cancel(
                        order=order,
                        actor=staff,
                        reason=CancelReason.CUSTOMER_CHANGED_MIND,
                    )
                order.refresh_from_db()
