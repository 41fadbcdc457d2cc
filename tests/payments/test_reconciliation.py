"""Statement import: one bill with every kind of difference, re-imports that open nothing
new, the bill formats (GBK, Chinese headers, BOM, comment lines), bad rows, the
management command and the admin upload.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.models import Order
from payments.models import Payment, ReconciliationCase, Refund, StatementImport, StatementLine
from payments.reconciliation import STATEMENT_TZ, StatementUnreadable, statement_import, statement_report

from .ledger_factories import new_order, refund_of, succeeded_payment

pytestmark = pytest.mark.django_db

HEADER = "trade_no,out_trade_no,amount,type,time"
CHINESE_HEADER = "渠道交易号,商户订单号,金额,类型,时间"


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2024, 5, day, hour, minute, tzinfo=STATEMENT_TZ)


def stamp(moment: datetime) -> str:
    return moment.astimezone(STATEMENT_TZ).strftime("%Y-%m-%d %H:%M:%S")


def bill(rows: list[tuple], header: str = HEADER) -> str:
    return "\n".join([header, *(",".join(str(cell) for cell in row) for row in rows)]) + "\n"


@dataclass
class Book:
    matched: Payment
    refund: Refund
    differs: Payment
    unlisted: Payment
    csv: str


@pytest.fixture
def make_order(storefront, tshirt):
    def make(**kwargs) -> Order:
        return new_order(storefront=storefront, sku=tshirt, **kwargs)

    return make


@pytest.fixture
def book(make_order) -> Book:
    """Our side of 2024-05-01 and the gateway's bill for it, with one of each difference."""
    matched = succeeded_payment(make_order(), at=at(10))
    refund = refund_of(matched, amount=Decimal("50.00"), at=at(11))
    differs = succeeded_payment(make_order(), at=at(12))
    unlisted = succeeded_payment(make_order(), at=at(13))
    succeeded_payment(make_order(), at=at(9, day=2))  # the next day: outside the bill's period
    succeeded_payment(make_order(payment_method="wechatpay"), channel="wechatpay", at=at(12, 30))  # other channel
    csv = bill(
        [
            (matched.gateway_trade_no, matched.out_trade_no, matched.amount, "payment", stamp(at(10))),
            ("GWREFUND1", matched.out_trade_no, "50.00", "refund", stamp(at(11, 1))),
            (differs.gateway_trade_no, differs.out_trade_no, differs.amount + 1, "payment", stamp(at(12))),
            ("GWSTRANGER", "NOT-OURS-001", "88.00", "payment", stamp(at(14))),
        ]
    )
    return Book(matched, refund, differs, unlisted, csv)


def do_import(content: str | bytes, channel: str = "alipay", **kwargs) -> StatementImport:
    file = io.BytesIO(content) if isinstance(content, bytes) else io.StringIO(content)
    return statement_import(channel=channel, file=file, file_name="bill.csv", imported_by="finance", **kwargs)


def results(statement: StatementImport) -> list[tuple[str, str]]:
    return sorted((d["result"], d["out_trade_no"]) for d in statement_report(statement)["discrepancies"])


def counts(statement: StatementImport) -> tuple[int, int, int, int]:
    return statement.matched, statement.missing_here, statement.missing_at_gateway, statement.amount_differs


# --- matching --------------------------------------------------------------------------


def test_each_kind_of_difference_is_found_once_with_a_case(book):
    statement = do_import(book.csv)

    assert counts(statement) == (2, 1, 1, 1)
    assert statement.lines_total == 4
    assert (statement.period_start, statement.period_end) == (at(10), at(14))
    assert len(statement.file_sha256) == 64
    lines = dict(StatementLine.objects.filter(statement=statement).values_list("out_trade_no", "result"))
    assert lines[book.differs.out_trade_no] == "amount_differs"
    assert lines["NOT-OURS-001"] == "missing_here"
    assert sorted(StatementLine.objects.filter(statement=statement).values_list("kind", "result")) == [
        ("payment", "amount_differs"),
        ("payment", "matched"),
        ("payment", "missing_here"),
        ("refund", "matched"),
    ]

    assert results(statement) == sorted(
        [
            ("amount_differs", book.differs.out_trade_no),
            ("missing_at_gateway", book.unlisted.out_trade_no),
            ("missing_here", "NOT-OURS-001"),
        ]
    )
    cases = ReconciliationCase.objects.filter(type="statement_mismatch")
    assert cases.count() == 3
    differs = cases.get(out_trade_no=book.differs.out_trade_no)
    assert (differs.expected_amount, differs.actual_amount) == (book.differs.amount, book.differs.amount + 1)
    assert differs.payment == book.differs and differs.order_id == book.differs.order_id
    unlisted = cases.get(out_trade_no=book.unlisted.out_trade_no)
    assert (unlisted.expected_amount, unlisted.actual_amount, unlisted.payment) == (
        book.unlisted.amount,
        None,
        book.unlisted,
    )
    stranger = cases.get(out_trade_no="NOT-OURS-001")
    assert (stranger.expected_amount, stranger.actual_amount, stranger.order) == (None, Decimal("88.00"), None)
    assert book.unlisted.order.events.filter(type="case_opened").count() == 1


def test_reimporting_the_same_bill_opens_no_new_case(book):
    first = do_import(book.csv)
    second = do_import(book.csv)

    assert ReconciliationCase.objects.count() == 3
    assert StatementImport.objects.count() == 2
    assert first.file_sha256 == second.file_sha256
    assert counts(second) == counts(first)
    assert results(second) == results(first)
    assert StatementLine.objects.filter(statement=second).count() == 4
    case = ReconciliationCase.objects.get(out_trade_no="NOT-OURS-001")
    assert set(case.data["statements"]) == {str(first.pk), str(second.pk)}


def test_a_refund_line_matches_each_refund_once(make_order):
    payment = succeeded_payment(make_order(), at=at(10))
    for n in (1, 2):
        refund_of(payment, amount=Decimal("10.00"), n=n, at=at(11))
    refund_of(payment, amount=Decimal("30.00"), n=3, status=Refund.Status.FAILED)  # not money that left
    refund_line = ("GW", payment.out_trade_no, "-10.00", "退款", stamp(at(11)))  # Alipay lists refunds negative
    csv = bill(
        [
            (payment.gateway_trade_no, payment.out_trade_no, payment.amount, "收款", stamp(at(10))),
            refund_line,
            refund_line,
            ("GW", payment.out_trade_no, "10.00", "refund", stamp(at(11, 5))),
        ]
    )
    statement = do_import(csv)
    assert counts(statement) == (3, 1, 0, 0)
    assert results(statement) == [("missing_here", payment.out_trade_no)]


def test_an_exact_refund_line_is_not_robbed_by_one_with_a_different_amount(make_order):
    payment = succeeded_payment(make_order(), at=at(10))
    refund_of(payment, amount=Decimal("10.00"), n=1, at=at(11))
    refund_of(payment, amount=Decimal("20.00"), n=2, at=at(11))
    csv = bill(
        [
            ("GW1", payment.out_trade_no, "25.00", "refund", stamp(at(11))),  # differs, listed first
            ("GW2", payment.out_trade_no, "10.00", "refund", stamp(at(11))),
        ]
    )
    statement = do_import(csv)
    assert counts(statement) == (1, 0, 0, 1)  # the payment (10:00) is before this bill's period
    differs = statement_report(statement)["discrepancies"]
    assert [(d["result"], d["our_amount"], d["their_amount"]) for d in differs if d["kind"] == "refund"] == [
        ("amount_differs", Decimal("20.00"), Decimal("25.00"))
    ]


def test_a_payment_we_closed_is_missing_here(make_order):
    order = make_order()
    closed = Payment.objects.create(
        order=order, channel="alipay", out_trade_no=f"{order.order_no}P01", amount=order.payable_total
    )
    closed.close(at=at(9))
    closed.save()
    statement = do_import(bill([("GWX", closed.out_trade_no, closed.amount, "payment", stamp(at(10)))]))
    assert counts(statement) == (0, 1, 0, 0)
    case = ReconciliationCase.objects.get()
    assert (case.payment, case.order) == (closed, order)
    assert "已关闭" in case.summary


def test_an_explicit_period_widens_the_search_for_missing_payments(book):
    statement = do_import(book.csv, period_start=at(0), period_end=at(23, 59, day=2))
    assert counts(statement) == (2, 1, 2, 1)  # now the next day's payment is missing too
    assert (statement.period_start, statement.period_end) == (at(0), at(23, 59, day=2))


def test_payments_of_another_channel_are_not_compared(book):
    statement = do_import(book.csv, channel="wechatpay")
    # every alipay line is unknown on the wechatpay side; the wechatpay payment at 12:30 is missing
    assert counts(statement) == (0, 4, 1, 0)


def test_matching_costs_the_same_number_of_queries_for_many_lines(make_order):
    order = make_order()

    def statement_of(first: int, n: int, hour: int) -> str:
        payments = [succeeded_payment(order, n=i, at=at(hour), book=False) for i in range(first, first + n)]
        return bill([(p.gateway_trade_no, p.out_trade_no, p.amount, "payment", stamp(at(hour))) for p in payments])

    small, large = statement_of(1, 3, hour=10), statement_of(10, 60, hour=15)
    with CaptureQueriesContext(connection) as few:
        assert counts(do_import(small)) == (3, 0, 0, 0)
    with CaptureQueriesContext(connection) as many:
        assert counts(do_import(large)) == (60, 0, 0, 0)
    assert len(many) == len(few)


# --- formats and bad rows --------------------------------------------------------------


def test_gbk_bill_with_chinese_headers_and_comment_lines(book):
    rows = book.csv.splitlines()[1:]
    rows = [row.replace(",payment,", ",交易,").replace(",refund,", ",退款,") for row in rows]
    text = "\n".join(
        [
            "#支付宝交易记录明细查询",
            "#账号：[20880000000000000156]",
            "",
            CHINESE_HEADER,
            *rows,
            "#-----------------------------------------业务明细列表结束------------------------------------",
            "#交易合计：4笔",
        ]
    )
    statement = do_import(text.encode("gbk"))
    assert counts(statement) == (2, 1, 1, 1)
    assert ReconciliationCase.objects.count() == 3


def test_utf8_bom_wechat_style_backticks_and_crlf(book):
    rows = [",".join(f"`{cell}" for cell in row.split(",")) for row in book.csv.splitlines()[1:]]
    content = "\ufeff" + "\r\n".join([HEADER, *rows]) + "\r\n"
    statement = do_import(content.encode("utf-8"))
    assert counts(statement) == (2, 1, 1, 1)


def test_a_bad_row_is_counted_and_opens_a_case_naming_its_row(book):
    rows = book.csv.splitlines()
    content = "\n".join([rows[0], rows[1], "GWBAD,X-1,abc,payment,2024-05-01 10:30:00", *rows[2:]])
    content += "\nGWBAD2,X-2,1.00,transfer,2024-05-01 10:31:00\nGWBAD3,X-3,1.00,payment,01/05/2024\n"
    statement = do_import(content)

    assert counts(statement) == (2, 1, 1, 1)
    report = statement_report(statement)
    assert report["bad_rows"] == 3 and statement.lines_total == 7
    bad = [d for d in report["discrepancies"] if d["result"] == "bad_row"]
    assert [d["row"] for d in bad] == [3, 7, 8]
    summaries = ReconciliationCase.objects.filter(data__reason="bad_row").values_list("summary", flat=True)
    assert sorted(summaries)[0].startswith("对账单第 3 行无法解析")
    assert all(s.startswith("对账单第 ") for s in summaries)

    do_import(content)
    assert ReconciliationCase.objects.count() == 6


def test_amounts_stay_decimal_to_the_cent(make_order):
    payment = succeeded_payment(make_order(), amount=Decimal("0.30"), at=at(10), book=False)
    statement = do_import(
        bill(
            [
                (payment.gateway_trade_no, payment.out_trade_no, "0.30", "payment", stamp(at(10))),
                ("GW", "X-9", "0.105", "payment", stamp(at(10))),  # three decimals is a bad row
            ]
        )
    )
    assert counts(statement) == (1, 0, 0, 0)
    assert statement_report(statement)["bad_rows"] == 1


@pytest.mark.parametrize(
    "content",
    [
        "",
        "# only comments\n\n",
        "trade_no,out_trade_no,amount,time\nGW,X,1.00,2024-05-01 10:00:00\n",
        b"\xff\xfe\x00\x00\xff",
    ],
    ids=["empty", "comments-only", "missing-column", "undecodable"],
)
def test_an_unreadable_file_records_nothing(db, content):
    with pytest.raises(StatementUnreadable):
        do_import(content)
    assert StatementImport.objects.count() == 0


def test_progress_is_reported_up_to_every_row(book):
    seen: list[int] = []
    do_import(book.csv, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 4


# --- the management command ----------------------------------------------------------


def test_command_imports_and_prints_the_report(book, tmp_path):
    bill_file = tmp_path / "alipay-20240501.csv"
    bill_file.write_bytes(book.csv.encode("gbk"))
    out, err = io.StringIO(), io.StringIO()
    call_command("import_statement", str(bill_file), channel="alipay", stdout=out, stderr=err)

    printed = out.getvalue()
    assert "一致 matched: 2" in printed
    assert "我方缺失 missing here: 1" in printed
    assert "渠道缺失 missing at gateway: 1" in printed
    assert "金额不符 amount differs: 1" in printed
    for out_trade_no in ("NOT-OURS-001", book.differs.out_trade_no, book.unlisted.out_trade_no):
        assert out_trade_no in printed
    assert "[" in err.getvalue() and "4/4" in err.getvalue()
    assert StatementImport.objects.get().file_name == "alipay-20240501.csv"


def test_command_fails_on_a_missing_or_unreadable_file(db, tmp_path):
    with pytest.raises(CommandError, match="无法读取"):
        call_command("import_statement", str(tmp_path / "nope.csv"), channel="alipay", stderr=io.StringIO())
    broken = tmp_path / "broken.csv"
    broken.write_text("hello,world\n1,2\n")
    with pytest.raises(CommandError, match="表头"):
        call_command("import_statement", str(broken), channel="alipay", stderr=io.StringIO())
    assert StatementImport.objects.count() == 0


# --- the admin -------------------------------------------------------------------------


def test_admin_upload_creates_the_import_and_shows_its_report(book, admin_client):
    upload_url = reverse("admin:payments_statementimport_upload")
    page = admin_client.get(upload_url)
    assert page.status_code == 200
    assert "上传对账单" in page.content.decode()
    assert admin_client.get(reverse("admin:payments_statementimport_add")).url == upload_url

    file = SimpleUploadedFile("bill.csv", book.csv.encode("utf-8"), content_type="text/csv")
    response = admin_client.post(upload_url, {"channel": "alipay", "file": file})

    statement = StatementImport.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:payments_statementimport_change", args=[statement.pk])
    assert statement.imported_by == "admin"
    change = admin_client.get(response.url).content.decode()
    for text in ("NOT-OURS-001", book.differs.out_trade_no, book.unlisted.out_trade_no, "渠道缺失"):
        assert text in change
    assert admin_client.get(reverse("admin:payments_statementimport_changelist")).status_code == 200


def test_admin_upload_of_an_unreadable_file_shows_the_error(db, admin_client):
    file = SimpleUploadedFile("bill.csv", b"hello,world\n", content_type="text/csv")
    response = admin_client.post(reverse("admin:payments_statementimport_upload"), {"channel": "alipay", "file": file})
    assert response.status_code == 200
    assert "表头" in response.content.decode()
    assert StatementImport.objects.count() == 0
