"""Batch ship: shipments_import, the CSV/XLSX reader, `manage.py import_shipments` and the admin upload."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from openpyxl import Workbook

from fulfillment.imports import RowStatus, shipment_rows_read, shipments_import
from fulfillment.models import Shipment, ShipmentStatus
from inventory.models import StockLevel
from oms.errors import PermissionDenied, ValidationFailed
from orders.events import Actor
from orders.models import OrderEvent
from tests.conftest import force_login_verified

from .conftest import SYSTEM, allocated, order_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def parcels(hangzhou, guangzhou, stocked, settings):
    """Three one-parcel orders, and one order split across two warehouses."""
    settings.OMS_AUTO_MERGE = False
    shirt = stocked({hangzhou: 20, guangzhou: 0}, code="SHIRT")
    mug = stocked({guangzhou: 20}, code="MUG")
    singles = [allocated(order_for([(shirt, 1)]))[0] for _ in range(3)]
    split = allocated(order_for([(shirt, 1), (mug, 1)]))
    assert len(split) == 2
    return {"singles": singles, "split": split}


def order_no_of(shipment: Shipment) -> str:
    return shipment.lines.first().order.order_no


def csv_file(text: str, encoding: str = "utf-8") -> io.BytesIO:
    return io.BytesIO(text.encode(encoding))


def test_ships_by_shipment_or_order_and_reimporting_changes_nothing(parcels, hangzhou):
    a, b, c = parcels["singles"]
    rows = [
        {"shipment_no": a.shipment_no, "carrier": "shunfeng", "tracking_no": "SF1000000001"},
        {"order_no": order_no_of(b), "carrier": "顺丰速运", "tracking_no": "sf1000000002"},
        {
            "shipment_no": c.shipment_no,
            "order_no": order_no_of(c),
            "carrier": "ZHONGTONG",
            "tracking_no": "731000000003",
        },
    ]
    first = shipments_import(rows=rows, actor=SYSTEM)
    assert [(r.row, r.status, r.shipment_no) for r in first] == [
        (2, "ok", a.shipment_no),
        (3, "ok", b.shipment_no),
        (4, "ok", c.shipment_no),
    ]
    on_hand = StockLevel.objects.get(sku__code="SHIRT", warehouse=hangzhou).on_hand
    events = OrderEvent.objects.filter(type=OrderEvent.Type.SHIPMENT_SHIPPED).count()

    again = shipments_import(rows=rows, actor=SYSTEM)
    assert [r.status for r in again] == ["unchanged"] * 3
    assert StockLevel.objects.get(sku__code="SHIRT", warehouse=hangzhou).on_hand == on_hand == 17
    assert OrderEvent.objects.filter(type=OrderEvent.Type.SHIPMENT_SHIPPED).count() == events == 3
    b.refresh_from_db()
    assert (b.status, b.carrier, b.tracking_no) == (ShipmentStatus.SHIPPED, "shunfeng", "SF1000000002")


def test_each_bad_row_is_reported_and_the_others_still_ship(parcels):
    a, b, c = parcels["singles"]
    hz_part, gz_part = parcels["split"]
    shipments_import(
        rows=[{"shipment_no": a.shipment_no, "carrier": "shunfeng", "tracking_no": "SF1000000001"}], actor=SYSTEM
    )
    rows = [
        {"shipment_no": "P-NOPE", "carrier": "shunfeng", "tracking_no": "SF1000000009"},
        {"shipment_no": b.shipment_no, "carrier": "x", "tracking_no": "SF1000000002"},
        {"shipment_no": b.shipment_no, "carrier": "shunfeng", "tracking_no": "1"},
        {"order_no": order_no_of(hz_part), "carrier": "shunfeng", "tracking_no": "SF1000000004"},
        {"shipment_no": a.shipment_no, "carrier": "shunfeng", "tracking_no": "SF1000000005"},
        {"order_no": order_no_of(a), "carrier": "shunfeng", "tracking_no": "SF1000000006"},
        {"carrier": "shunfeng", "tracking_no": "SF1000000007"},
        {
            "shipment_no": b.shipment_no,
            "order_no": order_no_of(c),
            "carrier": "shunfeng",
            "tracking_no": "SF1000000008",
        },
        {"shipment_no": c.shipment_no, "carrier": "shunfeng", "tracking_no": "SF1000000001"},  # a's number
        {"shipment_no": hz_part.shipment_no, "carrier": "shunfeng", "tracking_no": "SF1000000010"},
    ]
    results = shipments_import(rows=rows, actor=SYSTEM)
    assert [r.status for r in results] == ["error"] * 9 + ["ok"]
    messages = [r.message for r in results]
    assert "P-NOPE" in messages[0]
    assert "x" in messages[1] and "shunfeng" in messages[1]
    assert "1" in messages[2] and "格式" in messages[2]
    assert hz_part.shipment_no in messages[3] and gz_part.shipment_no in messages[3]  # split: name the parcel
    assert "另一运单号" in messages[4]
    assert "SF1000000001" in messages[5]
    assert "包裹号或订单号" in messages[6]
    assert order_no_of(c) in messages[7]
    assert "已用于另一个包裹" in messages[8]
    b.refresh_from_db()
    assert b.status == ShipmentStatus.PENDING


def test_needs_the_import_permission(parcels, staff):
    a = parcels["singles"][0]
    row = {"shipment_no": a.shipment_no, "carrier": "shunfeng", "tracking_no": "SF1000000001"}
    with pytest.raises(PermissionDenied):
        shipments_import(rows=[row], actor=Actor.staff(staff("客服")))
    (result,) = shipments_import(rows=[row], actor=Actor.staff(staff("仓储")))
    assert result.status == RowStatus.OK


def test_reads_csv_in_utf8_bom_or_gb18030_with_chinese_headers_and_skips_blank_rows():
    text = "订单号,快递公司,运单号\r\nO1,顺丰速运,SF1000000001\r\n,,\r\nO2,zhongtong,731000000003\r\n"
    for raw in (csv_file("\ufeff" + text), csv_file(text, "gb18030")):
        rows = shipment_rows_read(raw, name="发货.CSV")
        assert rows == [
            {"row": 2, "order_no": "O1", "carrier": "顺丰速运", "tracking_no": "SF1000000001"},
            {"row": 4, "order_no": "O2", "carrier": "zhongtong", "tracking_no": "731000000003"},
        ]


def test_reads_xlsx_where_excel_stored_the_number_as_a_number():
    book = Workbook()
    sheet = book.active
    sheet.append(["shipment_no", "carrier", "tracking_no"])
    sheet.append(["P1", "yunda", 4312345678901])
    sheet.append(["P2", "yunda", 4312345678902.0])
    raw = io.BytesIO()
    book.save(raw)
    raw.seek(0)
    rows = shipment_rows_read(raw, name="ship.xlsx")
    assert [(r["row"], r["shipment_no"]) for r in rows] == [(2, "P1"), (3, "P2")]
    # shipments_import reads the cells as text: 4312345678902.0 becomes "4312345678902"
    results = shipments_import(rows=rows, actor=SYSTEM)
    assert all("没有这个包裹" in r.message for r in results)


@pytest.mark.parametrize(
    ("raw", "name", "says"),
    [
        (b"a,b\n1,2\n", "x.csv", "缺少列"),
        (b"shipment_no,tracking_no\nP1,SF1\n", "x.csv", "carrier"),
        (b"", "x.csv", "空"),
        (b"not a zip", "x.xlsx", "XLSX"),
        (b"shipment_no,carrier,tracking_no\n", "x.txt", "CSV"),
    ],
)
def test_unreadable_files_are_refused_naming_the_file(raw, name, says):
    with pytest.raises(ValidationFailed) as refused:
        shipment_rows_read(io.BytesIO(raw), name=name)
    assert says in refused.value.fields["file"][0]


# --- manage.py import_shipments ---------------------------------------------------------


def test_command_ships_prints_a_summary_and_fails_when_a_row_failed(parcels, tmp_path):
    a, b, _ = parcels["singles"]
    good = tmp_path / "good.csv"
    good.write_text(f"shipment_no,carrier,tracking_no\n{a.shipment_no},shunfeng,SF1000000001\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    call_command("import_shipments", str(good), stdout=out, stderr=err)
    assert "1 rows: 1 shipped, 0 unchanged" in out.getvalue()
    assert "1/1" in err.getvalue()  # the progress bar
    call_command("import_shipments", str(good), stdout=out, stderr=err)
    assert "0 shipped, 1 unchanged" in out.getvalue()

    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"shipment_no,carrier,tracking_no\n{a.shipment_no},shunfeng,SF1000000001\n{b.shipment_no},shunfeng,1\n",
        encoding="utf-8",
    )
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 rows failed"):
        call_command("import_shipments", str(bad), "--no-progress", stdout=out, stderr=err)
    assert f"row 3 {b.shipment_no}:" in err.getvalue()
    headless = tmp_path / "headless.csv"
    headless.write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(CommandError, match="缺少列"):
        call_command("import_shipments", str(headless))


def test_command_acts_as_a_staff_user_when_told(parcels, tmp_path, staff):
    a = parcels["singles"][0]
    user = staff("仓储")
    path = tmp_path / "ship.csv"
    path.write_text(f"shipment_no,carrier,tracking_no\n{a.shipment_no},shunfeng,SF1000000001\n", encoding="utf-8")
    call_command("import_shipments", str(path), "--user", user.username, stdout=io.StringIO(), stderr=io.StringIO())
    event = a.lines.first().order.events.get(type=OrderEvent.Type.SHIPMENT_SHIPPED)
    assert event.actor_user == user


# --- the admin upload (a throwaway admin site with only the mixin) ------------------------------


@pytest.mark.urls("tests.fulfillment.admin_import_urls")
def test_admin_upload_shows_per_row_results_failures_first(parcels, client, staff):
    a, b, _ = parcels["singles"]
    user = staff("仓储")
    force_login_verified(client, user)
    page = client.get("/import-admin/fulfillment/shipment/import/")
    assert page.status_code == 200
    assert "批量导入发货" in page.content.decode() and 'enctype="multipart/form-data"' in page.content.decode()

    upload = SimpleUploadedFile(
        "ship.csv",
        f"包裹号,承运商,运单号\n{a.shipment_no},shunfeng,SF1000000001\n{b.shipment_no},shunfeng,1\n".encode(),
    )
    response = client.post("/import-admin/fulfillment/shipment/import/", {"file": upload})
    html = response.content.decode()
    assert response.status_code == 200
    assert "已发货 1 行" in html and "失败 1 行" in html
    failed_table = html.split('id="import-failed"')[1].split("</table>")[0]
    assert b.shipment_no in failed_table and a.shipment_no not in failed_table
    a.refresh_from_db()
    assert a.status == ShipmentStatus.SHIPPED
    assert a.lines.first().order.events.get(type=OrderEvent.Type.SHIPMENT_SHIPPED).actor_user == user

    changelist = client.get("/import-admin/fulfillment/shipment/")
    assert changelist.context["shipment_import_url"] == "/import-admin/fulfillment/shipment/import/"


@pytest.mark.urls("tests.fulfillment.admin_import_urls")
def test_admin_upload_refuses_a_bad_file_and_users_without_the_permission(parcels, client, staff):
    force_login_verified(client, staff("仓储"))
    response = client.post(
        "/import-admin/fulfillment/shipment/import/", {"file": SimpleUploadedFile("x.csv", b"a,b\n1,2\n")}
    )
    assert response.status_code == 200 and "缺少列" in response.content.decode()
    assert 'id="import-summary"' not in response.content.decode()

    force_login_verified(client, staff("客服"))
    assert client.get("/import-admin/fulfillment/shipment/import/").status_code == 403
    changelist = client.get("/import-admin/fulfillment/shipment/")
    assert "shipment_import_url" not in changelist.context


@pytest.mark.urls("tests.fulfillment.admin_import_urls")
def test_admin_upload_sends_big_files_to_the_command(db, client, staff, monkeypatch):
    monkeypatch.setattr("fulfillment.admin_imports.ADMIN_MAX_ROWS", 2)
    force_login_verified(client, staff("仓储"))
    body = "shipment_no,carrier,tracking_no\n" + "".join(f"P{i},shunfeng,SF100000000{i}\n" for i in range(3))
    response = client.post(
        "/import-admin/fulfillment/shipment/import/", {"file": SimpleUploadedFile("big.csv", body.encode())}
    )
    assert "import_shipments" in response.content.decode()
    assert 'id="import-summary"' not in response.content.decode()
