"""Notify handling end to end through the HTTP endpoints, with real RSA and AES-GCM:
the keys are generated here and the notifies signed here, the way the gateways do it.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oms.errors import InvalidTransition
from orders import services as order_services
from orders.models import Order
from payments import services
from payments.models import Payment, PaymentNotification, ReconciliationCase, Refund
from payments.services import refund_execute
from tests.fulfillment.factories import ship_whole_order
from tests.orders.factories import OrderFactory
from tests.payments.gateway_doubles import FakeGateways, http_headers, yuan_to_fen
from workflows.cancellation import order_cancel

ALIPAY_URL = "/payments/notify/alipay/"
WECHAT_URL = "/payments/notify/wechatpay/"


@pytest.fixture(scope="session")
def fake_gateways(tmp_path_factory):
    return FakeGateways(tmp_path_factory.mktemp("gateway-keys"))


@pytest.fixture
def gateways(settings, fake_gateways):
    for name, value in fake_gateways.settings().items():
        setattr(settings, name, value)
    return fake_gateways


@pytest.fixture
def order(create_order):
    return Order.objects.get(order_no=create_order()["order_no"])


def attempt(order: Order, channel: str = "alipay", n: int = 1) -> Payment:
    return Payment.objects.create(
        order=order, channel=channel, out_trade_no=f"{order.order_no}P{n:02d}", amount=order.payable_total
    )


def post_alipay(body: bytes, client: Client | None = None):
    return (client or Client()).post(ALIPAY_URL, body, content_type="application/x-www-form-urlencoded")


def post_wechat(body: bytes, headers: dict[str, str], client: Client | None = None):
    return (client or Client()).post(WECHAT_URL, body, content_type="application/json", **http_headers(headers))


def test_valid_alipay_notify_applies_once(gateways, order):
    payment = attempt(order)
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total))
    first, second = post_alipay(body), post_alipay(body)
    assert (first.content, second.content) == (b"success", b"success")
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == "awaiting_shipment"  # paid, then approved automatically
    assert order.paid_total == order.payable_total
    assert payment.status == "succeeded" and payment.gateway_trade_no
    outcomes = sorted(PaymentNotification.objects.values_list("outcome", flat=True))
    assert outcomes == ["applied", "duplicate"]
    assert order.events.filter(type="pay").count() == 1


def test_an_applied_notify_is_a_fixed_number_of_queries(gateways, order, django_assert_max_num_queries):
    payment = attempt(order)
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total))
    # SAVEPOINT (here, inside the test's transaction), the payment and its order read and
    # locked in one statement, the inbox row inserted with its outcome, the payment's new
    # status, the order paid and approved in one UPDATE, both events in one INSERT, RELEASE.
    # It was 18, then 13 (the order's id read before locking it, the whole inbox row read
    # again), then 11 (the payment locked by a statement of its own, the inbox row in a
    # savepoint and a transaction of its own, and its outcome read again under a lock), then 8
    # (the inbox row inserted first and its outcome written by an UPDATE).
    with django_assert_max_num_queries(7):
        assert post_alipay(body).content == b"success"
    order.refresh_from_db()
    assert order.status == "awaiting_shipment"
    assert list(order.events.order_by("id").values_list("type", flat=True))[-2:] == ["pay", "approve"]


@pytest.mark.django_db(transaction=True)
def test_an_applied_notify_outside_a_transaction_is_seven_statements(gateways, order):
    """As the endpoint runs in production (autocommit, no outer transaction): one transaction,
    BEGIN .. COMMIT, around the statements above; the inbox row is written once, as applied."""
    payment = attempt(order)
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total))
    with CaptureQueriesContext(connections["default"]) as queries:
        assert post_alipay(body).content == b"success"
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert statements == [
        "BEGIN",
        "SELECT",
        "INSERT",
        "UPDATE",
        "UPDATE",
        "INSERT",
        "COMMIT",
    ]
    inbox = PaymentNotification.objects.get()
    assert (inbox.outcome, inbox.payment_id, inbox.order_id) == ("applied", payment.pk, order.pk)
    assert inbox.processed_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_notify_that_fails_to_apply_is_kept_and_applied_by_the_retry(gateways, order, monkeypatch):
    """Stored and applied in one transaction: when applying fails, the verified notify is kept
    unapplied (pending) and the error goes up (a 500, so the gateway retries); the retry
    applies that same row."""
    payment = attempt(order)
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total))

    def broken(*args, **kwargs):
        raise RuntimeError("applying failed")

    # Fails after the inbox row and the payment's UPDATE were written: both are rolled back.
    monkeypatch.setattr(services.notify, "order_pay", broken)
    with pytest.raises(RuntimeError):
        post_alipay(body)
    [kept] = PaymentNotification.objects.all()
    assert (kept.outcome, kept.verified, kept.raw_body) == ("pending", True, body.decode())
    assert (kept.payment_id, kept.order_id, kept.processed_at) == (None, None, None)
    order.refresh_from_db()
    payment.refresh_from_db()
    assert (order.status, payment.status) == ("pending_payment", "created")

    monkeypatch.undo()
    assert post_alipay(body).content == b"success"
    assert post_alipay(body).content == b"success"
    kept.refresh_from_db()
    assert kept.outcome == "applied" and kept.order_id == order.pk
    assert sorted(PaymentNotification.objects.values_list("outcome", flat=True)) == ["applied", "duplicate"]
    order.refresh_from_db()
    assert order.status == "awaiting_shipment"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_notify_locks_the_order_before_the_payment(gateways, order):
    """Every path that locks both takes the order's row first. The notify takes both in one
    statement (FOR UPDATE OF the order, then the payment): while the payment's row is held
    elsewhere, the notify waits holding the order's row, never the other way round."""
    payment = attempt(order)
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total))
    holder = connections["default"].copy()
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:  # another transaction holds the payment only
            cursor.execute("SELECT id FROM payments_payment WHERE id = %s FOR UPDATE", [payment.pk])
        answers: list = []

        def deliver() -> None:
            try:
                answers.append(post_alipay(body).content)
            finally:
                connections.close_all()

        notify = threading.Thread(target=deliver)
        notify.start()
        probe = connections["default"].copy()
        try:
            order_held = False
            for _ in range(100):  # until the notify holds the order and waits for the payment
                with probe.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                        " WHERE NOT l.granted AND a.datname = current_database()"
                    )
                    waiting = cursor.fetchone()[0]
                if waiting:
                    with probe.cursor() as cursor:
                        cursor.execute("BEGIN")
                        cursor.execute("SELECT id FROM orders_order WHERE id = %s FOR UPDATE SKIP LOCKED", [order.pk])
                        order_held = cursor.fetchone() is None  # skipped: the notify holds it
                        cursor.execute("ROLLBACK")
                    break
                time.sleep(0.05)
            assert waiting and order_held
        finally:
            probe.close()
        holder.rollback()
        notify.join(timeout=30)
        assert answers == [b"success"]
    finally:
        holder.close()
    order.refresh_from_db()
    assert order.status == "awaiting_shipment"


def test_valid_wechat_notify_applies_once(gateways, order):
    payment = attempt(order, "wechatpay")
    body, headers = gateways.wechat_notify(
        out_trade_no=payment.out_trade_no, total_fen=yuan_to_fen(order.payable_total)
    )
    assert post_wechat(body, headers).status_code == 204
    assert post_wechat(body, headers).status_code == 204
    order.refresh_from_db()
    assert (order.status, order.paid_total) == ("awaiting_shipment", order.payable_total)
    assert PaymentNotification.objects.filter(outcome="applied").count() == 1
    assert PaymentNotification.objects.filter(outcome="duplicate").count() == 1


def test_large_order_waits_in_paid_for_finance(gateways, order, settings):
    Order.objects.filter(pk=order.pk).update(review_flags=["large_amount"])
    payment = attempt(order)
    post_alipay(gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total)))
    order.refresh_from_db()
    assert order.status == "paid"


def test_tampered_amount_is_rejected_and_changes_nothing(gateways, order):
    payment = attempt(order)
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total))
    tampered = body.replace(f"total_amount={order.payable_total}".encode(), b"total_amount=0.01")
    assert tampered != body
    response = post_alipay(tampered)
    assert response.content == b"fail"
    order.refresh_from_db()
    payment.refresh_from_db()
    assert (order.status, payment.status) == ("pending_payment", "created")
    row = PaymentNotification.objects.get()
    assert (row.outcome, row.verified) == ("rejected", False)
    assert ReconciliationCase.objects.count() == 0


def test_notify_signed_with_another_key_is_rejected(gateways, order):
    from tests.payments.gateway_doubles import KeyPair

    payment = attempt(order)
    impostor = FakeGateways.__new__(FakeGateways)
    impostor.alipay_platform = KeyPair()
    body = FakeGateways.alipay_notify(
        impostor, out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total)
    )
    assert post_alipay(body).content == b"fail"
    order.refresh_from_db()
    assert order.status == "pending_payment"


@pytest.mark.parametrize(
    ("overrides", "case_type"),
    [({"app_id": "2021999999999999"}, "merchant_mismatch"), ({"seller_id": "2088999999999999"}, "merchant_mismatch")],
)
def test_wrong_app_or_seller_opens_a_case_and_is_acknowledged(gateways, order, overrides, case_type):
    payment = attempt(order)
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total), **overrides)
    assert post_alipay(body).content == b"success"  # acknowledged so the gateway stops resending
    order.refresh_from_db()
    assert order.status == "pending_payment"
    case = ReconciliationCase.objects.get()
    assert (case.type, case.order_id) == (case_type, order.pk)
    assert PaymentNotification.objects.get().outcome == "case_opened"


def test_unknown_out_trade_no_opens_a_case(gateways, order):
    body = gateways.alipay_notify(out_trade_no="NOT-OURS-1", total_amount="10.00")
    assert post_alipay(body).content == b"success"
    case = ReconciliationCase.objects.get()
    assert (case.type, case.out_trade_no, case.actual_amount) == ("unknown_order", "NOT-OURS-1", Decimal("10.00"))


def test_signed_but_wrong_amount_opens_a_case(gateways, order):
    payment = attempt(order)
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount="0.01")
    assert post_alipay(body).content == b"success"
    order.refresh_from_db()
    assert order.status == "pending_payment"
    case = ReconciliationCase.objects.get()
    assert (case.type, case.expected_amount, case.actual_amount) == (
        "amount_mismatch",
        order.payable_total,
        Decimal("0.01"),
    )


def test_a_notify_foreseen_as_plain_but_decided_otherwise_stores_what_was_decided(gateways, order, monkeypatch):
    """The short way inserts the inbox row as applied before applying it; should the decision
    differ from what _pays_plainly foresaw, the row is corrected in the same transaction."""
    monkeypatch.setattr(services.notify, "_pays_plainly", lambda *args: True)
    payment = attempt(order)
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount="0.01")
    assert post_alipay(body).content == b"success"
    [inbox] = PaymentNotification.objects.all()
    assert (inbox.outcome, inbox.outcome_note) == ("case_opened", "amount mismatch")
    assert (inbox.payment_id, inbox.order_id) == (payment.pk, order.pk)
    case = ReconciliationCase.objects.get()
    assert (case.type, case.notification_id) == ("amount_mismatch", inbox.pk)
    order.refresh_from_db()
    assert order.status == "pending_payment"


def test_stale_wechat_timestamp_is_rejected(gateways, order):
    payment = attempt(order, "wechatpay")
    stale = int((timezone.now() - timedelta(minutes=6)).timestamp())
    body, headers = gateways.wechat_notify(
        out_trade_no=payment.out_trade_no, total_fen=yuan_to_fen(order.payable_total), timestamp=stale
    )
    response = post_wechat(body, headers)
    assert response.status_code == 401
    assert response.json()["code"] == "FAIL"
    order.refresh_from_db()
    assert order.status == "pending_payment"


def test_wechat_probe_with_bad_signature_is_rejected(gateways, order):
    payment = attempt(order, "wechatpay")
    body, headers = gateways.wechat_notify(
        out_trade_no=payment.out_trade_no, total_fen=yuan_to_fen(order.payable_total)
    )
    headers["Wechatpay-Signature"] = headers["Wechatpay-Signature"][::-1]
    assert post_wechat(body, headers).status_code == 401
    assert PaymentNotification.objects.get().outcome == "rejected"


def test_oversized_body_is_refused_before_parsing(gateways, db):
    response = post_alipay(b"a=" + b"x" * (64 * 1024 + 1))
    assert response.status_code == 413
    assert PaymentNotification.objects.count() == 0


def test_refund_notice_is_not_counted_as_a_payment(gateways, order):
    payment = attempt(order)
    post_alipay(gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total)))
    refund = services.refund_request(
        order=order, amount=Decimal("10.00"), reason="部分退款", actor=order_services.Actor.system("test")
    )
    Refund.objects.filter(pk=refund.pk).update(status="processing")
    notice = gateways.alipay_notify(
        out_trade_no=payment.out_trade_no,
        total_amount=str(order.payable_total),
        refund_fee="10.00",
        out_biz_no=refund.out_refund_no,
        gmt_refund="2026-11-22 11:00:00.000",
    )
    assert post_alipay(notice).content == b"success"
    order.refresh_from_db()
    refund.refresh_from_db()
    assert order.paid_total == order.payable_total  # not paid twice
    assert order.refunded_total == Decimal("10.00")
    assert refund.status == "succeeded"
    assert Payment.objects.filter(status="succeeded").count() == 1


def test_late_payment_after_timeout_close_is_refunded_with_a_case(gateways, order):
    payment = attempt(order)
    order_cancel(order=order, actor=order_services.Actor.system("close_expired_orders"), reason="timeout")
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total))
    assert post_alipay(body).content == b"success"
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert order.paid_total == order.payable_total  # the money is counted, not dropped
    refund = Refund.objects.get()
    assert (refund.out_refund_no, refund.amount, refund.status) == (
        f"{payment.out_trade_no}RL",
        order.payable_total,
        "approved",
    )
    case = ReconciliationCase.objects.get()
    assert (case.type, case.refund_id) == ("paid_after_close", refund.pk)


def test_late_payment_revives_the_order_when_policy_allows(gateways, order, settings):
    settings.OMS_LATE_PAYMENT_POLICY = "revive"
    payment = attempt(order)
    order_cancel(order=order, actor=order_services.Actor.system("close_expired_orders"), reason="timeout")
    post_alipay(gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total)))
    order.refresh_from_db()
    assert (order.status, order.paid_total) == ("paid", order.payable_total)
    assert Refund.objects.count() == 0
    assert order.events.filter(type="revive").exists()


def test_two_successful_attempts_open_an_overpayment_case(gateways, order):
    alipay, wechat = attempt(order, "alipay", 1), attempt(order, "wechatpay", 2)
    post_alipay(gateways.alipay_notify(out_trade_no=alipay.out_trade_no, total_amount=str(order.payable_total)))
    body, headers = gateways.wechat_notify(out_trade_no=wechat.out_trade_no, total_fen=yuan_to_fen(order.payable_total))
    assert post_wechat(body, headers).status_code == 204
    order.refresh_from_db()
    assert order.status == "awaiting_shipment"
    assert order.paid_total == order.payable_total * 2  # both yuan are accounted for
    case = ReconciliationCase.objects.get()
    assert (case.type, case.payment_id) == ("overpaid", wechat.pk)


def test_refund_over_the_cap_is_refused(gateways, order):
    payment = attempt(order)
    post_alipay(gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total)))
    actor = order_services.Actor.system("test")
    services.refund_request(order=order, amount=Decimal("200.00"), reason="部分退款", actor=actor)
    with pytest.raises(services.RefundNotAllowed):
        services.refund_request(order=order, amount=Decimal("10.01"), reason="超额", actor=actor)
    services.refund_request(order=order, amount=Decimal("10.00"), reason="剩余", actor=actor)
    assert sum(Refund.objects.values_list("amount", flat=True)) == order.payable_total


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_notify_twenty_times_concurrently_applies_once(gateways, storefront, tshirt):
    order = OrderFactory(storefront=storefront)
    payment = attempt(order)
    body = gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total))
    barrier = threading.Barrier(20)
    answers: list = []

    def deliver() -> None:
        try:
            barrier.wait()
            answers.append(post_alipay(body).content)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [b"success"] * 20
    order.refresh_from_db()
    assert (order.status, order.paid_total) == ("awaiting_shipment", order.payable_total)
    assert PaymentNotification.objects.filter(outcome="applied").count() == 1
    assert PaymentNotification.objects.filter(outcome="duplicate").count() == 19
    assert order.events.filter(type="pay").count() == 1


def test_bank_transfer_matches_by_order_number_and_exact_amount(order, admin_user):
    transfer = services.bank_transfer_record(
        payer="杭州某某贸易有限公司",
        amount=order.payable_total,
        remark=f"货款 订单号{order.order_no}",
        received_at=timezone.now(),
        bank_reference="BR0001",
        user=admin_user,
    )
    order.refresh_from_db()
    assert transfer.status == "matched"
    assert (order.status, order.paid_total) == ("awaiting_shipment", order.payable_total)


@pytest.mark.parametrize("problem", ["no_number", "wrong_amount"])
def test_bank_transfer_that_does_not_match_opens_a_case(order, admin_user, problem):
    remark, amount = f"货款 {order.order_no}", order.payable_total
    if problem == "no_number":
        remark = "货款"
    else:
        amount += Decimal("0.01")
    transfer = services.bank_transfer_record(
        payer="某公司", amount=amount, remark=remark, received_at=timezone.now(), bank_reference="BR2", user=admin_user
    )
    order.refresh_from_db()
    assert transfer.status == "unmatched"
    assert order.status == "pending_payment"
    assert ReconciliationCase.objects.get().type == "unmatched_transfer"


def test_cash_on_delivery_is_recorded_when_collected(create_order):
    order = Order.objects.get(order_no=create_order(payment_method="cod")["order_no"])
    actor = order_services.Actor.system("test")
    order_services.order_confirm_cod(order=order, actor=actor)
    ship_whole_order(order, actor=actor)
    services.cod_collect(order=order, amount=order.payable_total, actor=actor)
    services.cod_collect(order=order, amount=order.payable_total, actor=actor)  # idempotent
    order.refresh_from_db()
    assert order.paid_total == order.payable_total
    assert Payment.objects.get(order=order).channel == "cod"


def test_second_partial_alipay_refund_notice_carries_the_cumulative_amount(gateways, order):
    payment = attempt(order)
    post_alipay(gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total)))
    actor = order_services.Actor.system("test")
    for amount, cumulative in (("10.00", "10.00"), ("20.00", "30.00")):
        refund = services.refund_request(order=order, amount=Decimal(amount), reason="部分退款", actor=actor)
        Refund.objects.filter(pk=refund.pk).update(status="processing")
        notice = gateways.alipay_notify(
            out_trade_no=payment.out_trade_no,
            total_amount=str(order.payable_total),
            refund_fee=cumulative,  # Alipay reports the trade's refunded total so far
            out_biz_no=refund.out_refund_no,
            gmt_refund="2026-11-22 11:00:00",
        )
        assert post_alipay(notice).content == b"success"
    order.refresh_from_db()
    assert order.refunded_total == Decimal("30.00")
    assert ReconciliationCase.objects.count() == 0
    assert set(Refund.objects.values_list("status", flat=True)) == {"succeeded"}


def test_finance_works_a_case_in_the_admin(gateways, admin_client, admin_user):
    post_alipay(gateways.alipay_notify(out_trade_no="NOT-OURS-2", total_amount="5.00"))
    case = ReconciliationCase.objects.get()
    admin_client.post("/admin/payments/reconciliationcase/", {"action": "assign_to_me", "_selected_action": [case.pk]})
    case.refresh_from_db()
    assert (case.status, case.assignee) == ("in_progress", admin_user)
    url = f"/admin/payments/reconciliationcase/{case.pk}/change/"
    response = admin_client.post(
        url, {"status": "resolved", "assignee": admin_user.pk, "resolution": "refunded", "note": "已线下退回"}
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.status, case.resolution, case.note) == ("resolved", "refunded", "已线下退回")
    assert case.resolved_at is not None


@pytest.mark.parametrize("paid_by", ["bank_transfer", "recorded_without_payment_row"])
def test_a_refund_with_no_gateway_route_is_finished_by_finance_by_hand(order, admin_client, admin_user, paid_by):

    if paid_by == "bank_transfer":
        services.bank_transfer_record(
            payer="某公司",
            amount=order.payable_total,
            remark=order.order_no,
            received_at=timezone.now(),
            bank_reference="BR9",
            user=admin_user,
        )
    else:
        order_services.order_pay(order=order, amount=order.payable_total, actor=order_services.Actor.system("t"))
    order_cancel(order=order, actor=order_services.Actor.staff(admin_user), reason="changed_mind")
    refund = Refund.objects.get()
    services.refund_approve(refund=refund, user=admin_user)
    refund_execute(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == "processing"  # nothing for a gateway to do: finance pays back by transfer
    admin_client.post("/admin/payments/refund/", {"action": "mark_paid_by_hand", "_selected_action": [refund.pk]})
    refund.refresh_from_db()
    order.refresh_from_db()
    assert (refund.status, order.refunded_total) == ("succeeded", order.payable_total)


def test_a_gateway_refund_cannot_be_marked_paid_by_hand(gateways, order, admin_user):
    payment = attempt(order)
    post_alipay(gateways.alipay_notify(out_trade_no=payment.out_trade_no, total_amount=str(order.payable_total)))
    refund = services.refund_request(
        order=order, amount=Decimal("1.00"), reason="x", actor=order_services.Actor.system("t")
    )
    Refund.objects.filter(pk=refund.pk).update(status="processing")
    refund.refresh_from_db()
    with pytest.raises(InvalidTransition):
        services.refund_mark_paid_by_hand(refund=refund, user=admin_user)
