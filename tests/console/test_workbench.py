"""The workbench: each queue's count is the count of the list it links to, by role."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from console.templatetags.workbench import countdown
from console.workbench import QUEUES, QueueView, workbench_for
from orders.events import Actor
from orders.holds import order_hold
from orders.services import order_confirm_cod, order_pay
from payments.services import refund_request
from reminders.models import ManualReminder
from tests.conftest import force_login_verified
from tests.fulfillment.conftest import order_for
from tests.payments.ledger_factories import succeeded_payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_morning(hangzhou, stocked):
    """One or more items in every queue."""
    shirt = stocked({hangzhou: 100}, price="20000.00")
    big = order_for([(shirt, 1)])
    order_pay(order=big, amount=big.payable_total, actor=Actor.gateway("alipay"))  # large amount: waits for review
    cod = order_for([(shirt, 1)], payment_method="cod", mobile="13900139000")
    unpaid = order_for([(shirt, 1)], mobile="13500135000")
    ManualReminder.objects.create(
        order=unpaid, channel="phone", outcome="considering", promised_pay_at=timezone.now() - timedelta(hours=1)
    )
    refunded = order_for([(shirt, 1)], mobile="13400134000")
    succeeded_payment(refunded, channel="bank_transfer")
    refund_request(order=refunded, amount=Decimal("100.00"), reason="test", actor=Actor.system("test"))
    tee = stocked({hangzhou: 10}, price="70.00")  # not a large amount: no review to wait for
    held = order_for([(tee, 1)], mobile="13300133000", payment_method="cod")
    order_confirm_cod(order=held, actor=Actor.system("test"))
    order_hold(order=held, actor=Actor.system("test"), reason="顾客要改地址")
    return {"big": big, "cod": cod}


def test_each_queue_count_matches_its_list(client, busy_morning):
    admin = User.objects.create_superuser("boss", password="x")
    force_login_verified(client, admin)
    queues = {q.key: q for q in workbench_for(admin)}
    assert queues["review"].count == 2  # both paid orders are large: they wait for a reviewer
    assert queues["cod"].count == 1
    assert queues["promised"].count == 1
    assert queues["refunds"].count == 1
    assert queues["held"].count == 1
    for queue in queues.values():
        page = client.get(queue.url)
        assert page.status_code == 200, queue.url
        assert page.context_data["cl"].result_count == queue.count, (queue.key, queue.url)
    home = client.get(reverse("admin:index"))
    assert home.status_code == 200
    text = home.content.decode()
    assert 'id="workbench"' in text and "待人工审核" in text and "退款待审批" in text


def test_each_role_sees_its_own_queues(busy_morning):
    def user_in(group: str) -> User:
        user = User.objects.create_user(f"u-{group}", password="x", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        return User.objects.get(pk=user.pk)

    seen = {group: {q.key for q in workbench_for(user_in(group))} for group in ["客服", "仓储", "财务", "运营", "主管"]}
    assert {"review", "cod", "promised"} <= seen["客服"]
    assert "refunds" not in seen["客服"] and "cases" not in seen["客服"]
    assert "refunds" in seen["财务"] and "cases" in seen["财务"] and "cod" not in seen["财务"]
    assert "review" not in seen["仓储"] and "refunds" not in seen["仓储"]
    assert seen["主管"] >= seen["客服"] | seen["财务"]


def test_queues_without_their_admin_list_are_left_out(busy_morning):
    admin = User.objects.create_superuser("boss", password="x")
    keys = {q.key for q in workbench_for(admin)}
    for queue in QUEUES:
        try:
            reverse(queue.admin_url)
        except NoReverseMatch:
            assert queue.key not in keys
        else:
            assert queue.key in keys


def test_a_deadline_shows_as_a_countdown():
    now = timezone.now()
    soon = QueueView("x", "x", 1, "/", now, now + timedelta(hours=5, minutes=12), now)
    late = QueueView("x", "x", 1, "/", now, now - timedelta(hours=2, minutes=3), now)
    assert countdown(soon) == "剩 5 小时 12 分"
    assert countdown(late) == "已超时 2 小时 3 分"


def test_the_admin_index_lists_orders_first(admin_client):
    apps = [app["app_label"] for app in admin_client.get("/admin/").context["app_list"]]
    assert apps[:3] == ["orders", "fulfillment", "aftersales"]
    assert apps.index("django_celery_beat") > apps.index("inventory")
