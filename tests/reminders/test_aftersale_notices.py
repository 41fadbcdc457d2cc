"""After-sales messages: approved (with the refund), the return address, rejected (with the
reason), refunded — each once per request, even for two requests on one order."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from aftersales.services import aftersale_approve, aftersale_create, aftersale_reject, aftersales_run_clock
from orders.events import Actor
from reminders.models import Reminder
from reminders.services import customer_opt_out, reminders_send_due
from tests.aftersales.conftest import delivered_order, pay_back
from tests.fulfillment.conftest import hangzhou, stocked  # noqa: F401 (fixtures)

from .conftest import at

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
CODES = ("aftersale_approved", "aftersale_return", "aftersale_rejected", "aftersale_refunded")


def staff(group: str) -> User:
    user = User.objects.create_user(f"{group}{User.objects.count()}", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return User.objects.get(pk=user.pk)


def test_each_step_tells_the_customer_once(sms, only_rules, clock, hangzhou, stocked, settings):  # noqa: F811
    only_rules(*CODES)
    settings.OMS_RETURN_ADDRESS = "退货组 0571-1 杭州市文一西路1号"
    clock(at(3, 10, 10, 0))
    shirt = stocked({hangzhou: 10}, price="60.00")
    mug = stocked({hangzhou: 10}, price="60.00")
    cap = stocked({hangzhou: 10}, price="60.00")
    order = delivered_order([(shirt, 1), (mug, 1), (cap, 1)])
    customer_opt_out(mobile=order.customer_mobile, reason="no more 催付")  # does not stop after-sales answers
    kefu = Actor.staff(staff("客服"))

    ret = aftersale_create(
        order=order, actor=SYSTEM, type="return_refund", reason="size_unfit", lines=[{"sku": shirt.code, "quantity": 1}]
    )
    aftersale_approve(aftersale=ret, actor=kefu)
    missing = aftersale_create(
        order=order, actor=SYSTEM, type="refund_only", reason="missing_item", lines=[{"sku": mug.code, "quantity": 1}]
    )
    aftersale_approve(aftersale=missing, actor=kefu)
    third = aftersale_create(
        order=order,
        actor=SYSTEM,
        type="return_refund",
        reason="changed_mind",
        lines=[{"sku": cap.code, "quantity": 1}],
    )
    aftersale_reject(aftersale=third, actor=kefu, reason="商品已拆封使用")
    missing.refresh_from_db()
    pay_back(missing.out_refund_no, staff("财务"))
    aftersales_run_clock()
    aftersales_run_clock()  # twice: still one message each

    assert reminders_send_due().sent == 4
    texts = {r.purpose: r.text for r in Reminder.objects.filter(order=order)}
    assert ret.aftersale_no in texts["aftersale_return"] and "杭州市文一西路1号" in texts["aftersale_return"]
    assert "7 天内" in texts["aftersale_return"]
    assert missing.aftersale_no in texts["aftersale_approved"] and "¥60.00" in texts["aftersale_approved"]
    assert "商品已拆封使用" in texts["aftersale_rejected"]
    assert "¥60.00" in texts["aftersale_refunded"] and missing.aftersale_no in texts["aftersale_refunded"]
    assert len(sms.sent) == 4
