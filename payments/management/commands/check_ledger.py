"""manage.py check_ledger: exits non-zero when the books disagree (see payments.ledger)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from aftersales.ledger import aftersale_line_breaches
from orders.models import Order
from payments.ledger import check_ledger
from payments.models import Payment, Refund


class Command(BaseCommand):
    help = "核对账目：订单已付/已退金额与支付、退款记录一致，退款不超过原支付，重复支付都有差异单，售后退款不超过订单行实付。"

    def handle(self, *args, **options) -> None:
        breaches = check_ledger() + aftersale_line_breaches()
        for breach in breaches:
            self.stdout.write(str(breach))
        if breaches:
            raise CommandError(f"账目检查发现 {len(breaches)} 处问题")
        self.stdout.write(
            self.style.SUCCESS(
                f"账目一致 OK：{Order.objects.count()} 个订单，{Payment.objects.count()} 笔支付，"
                f"{Refund.objects.count()} 笔退款"
            )
        )
