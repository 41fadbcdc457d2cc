"""The carrier's COD settlement file: money recorded once, differences to finance, idempotent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from fulfillment.cod import cod_settlement_import, cod_settlement_rows_read
from fulfillment.services import shipment_deliver, shipment_ship
from oms.errors import PermissionDenied
from orders.events import Actor
from payments.models import Payment, ReconciliationCase

from .conftest import SYSTEM, allocated, order_for

pytestmark = pytest.mark.django_db


def shipped_cod(shirt, tracking_no: str, mobile: str = "13800138000"):
    order = order_for([(shirt, 1)], payment_method="cod", mobile=mobile)
    (parcel,) = allocated(order)
    shipment_ship(shipment=parcel, actor=SYSTEM, carrier="shunfeng", tracking_no=tracking_no)
    parcel.refresh_from_db()
    return order, parcel


def test_settlement_records_checks_and_flags(hangzhou, stocked, staff, tmp_path):
    shirt = stocked({hangzhou: 10}, price="120.00")
    not_pushed, _ = shipped_cod(shirt, "SF100000000001")
    delivered, parcel = shipped_cod(shirt, "SF100000000002", mobile="13900139000")
    shipment_deliver(shipment=parcel, actor=SYSTEM, at=parcel.shipped_at)  # collected at the door
    wrong, _ = shipped_cod(shirt, "SF100000000003", mobile="13700137000")
    file = tmp_path / "cod.csv"
    file.write_text(
        "运单号,代收金额\nSF100000000001,120.00\nSF100000000002,120.00\nSF100000000003,100.00\nSF999,1\n",
        encoding="utf-8-sig",
    )
    finance = Actor.staff(staff("财务"))
    with file.open("rb") as handle:
        rows = cod_settlement_rows_read(handle, name=file.name)
    results = cod_settlement_import(rows=rows, actor=finance)
    assert [r.status for r in results] == ["collected", "unchanged", "mismatch", "error"]
    not_pushed.refresh_from_db()
    assert not_pushed.paid_total == Decimal("120.00")
    assert Payment.objects.filter(order=delivered, channel="cod").count() == 1  # not twice
    wrong.refresh_from_db()
    assert wrong.paid_total == Decimal("0.00")
    case = ReconciliationCase.objects.get(expected_amount=Decimal("120.00"), actual_amount=Decimal("100.00"))
    assert "SF100000000003" in case.summary

    again = cod_settlement_import(rows=rows, actor=finance)
    assert [r.status for r in again] == ["unchanged", "unchanged", "mismatch", "error"]
    assert Payment.objects.filter(channel="cod").count() == 2
    assert ReconciliationCase.objects.filter(actual_amount=Decimal("100.00")).count() == 1
    call_command("check_ledger")

    with pytest.raises(PermissionDenied):
        cod_settlement_import(rows=rows, actor=Actor.staff(staff("仓储")))
    with pytest.raises(CommandError, match="2 of 4 rows need a look"):
        call_command("import_cod_settlement", str(file))
