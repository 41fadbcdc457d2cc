"""Batch ship (批量发货): rows of (shipment or order, carrier, tracking number) from a carrier's or
a WMS's export, each shipped through fulfillment.services.shipment_ship.

Idempotent on (shipment or order, tracking number): a row whose parcel already left with that
number is `unchanged`, so re-importing a file, or a file that overlaps an earlier one, changes
nothing. Each row is its own transaction: one bad row is reported and the others still ship.
Both the `import_shipments` command and the admin upload (fulfillment.admin_imports) call
`shipments_import`; `shipment_rows_read` turns their CSV or XLSX file into rows.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_fsm import ConcurrentTransition
from openpyxl import load_workbook

from oms.errors import DomainError, InvalidTransition, ValidationFailed
from orders.events import Actor
from orders.models import Order

from .models import OPEN_STATUSES, Carrier, Shipment, ShipmentLine, ShipmentStatus
from .services import shipment_ship, tracking_no_check

# What a column may be called in the file: our own names, and what Chinese carriers' and
# WMS exports call them.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "shipment_no": ("shipment_no", "包裹号", "发货单号"),
    "order_no": ("order_no", "订单号", "订单编号"),
    "carrier": ("carrier", "承运商", "快递公司", "物流公司", "快递"),
    "tracking_no": ("tracking_no", "运单号", "快递单号", "物流单号"),
}
MAX_ROWS = 50_000


class RowStatus(models.TextChoices):
    OK = "ok", gettext_lazy("已发货")
    UNCHANGED = "unchanged", gettext_lazy("无变化（此前已按该运单号发货）")
    ERROR = "error", gettext_lazy("失败")


@dataclass(frozen=True)
class RowResult:
    row: int  # the row in the file (the header is row 1), so a person can find and fix it
    reference: str  # the shipment_no or order_no the row named
    status: str  # RowStatus
    message: str = ""
    shipment_no: str = ""

    @property
    def status_display(self) -> str:
        return str(RowStatus(self.status).label)


def shipments_import(
    *,
    rows: Iterable[Mapping[str, Any]],
    actor: Actor,
    first_row: int = 2,
    on_row: Callable[[RowResult], None] | None = None,
) -> list[RowResult]:
    """Ship each row's parcel; return one result per row, in order.

    A row names `shipment_no` or `order_no` (an order with exactly one parcel not yet shipped,
    or one that already left with this tracking number), `carrier` (Kuaidi100 code or its
    Chinese name) and `tracking_no`. A row may carry `row`, its number in the file; otherwise
    rows count from `first_row`. `on_row` is called after each row (a progress bar).
    """
    actor.require("fulfillment.import_shipments")
    results = []
    for index, row in enumerate(rows):
        result = _import_row(row, actor=actor, number=int(row.get("row") or first_row + index))
        results.append(result)
        if on_row is not None:
            on_row(result)
    return results


def _import_row(row: Mapping[str, Any], *, actor: Actor, number: int) -> RowResult:
    shipment_no = _cell(row.get("shipment_no"))
    order_no = _cell(row.get("order_no"))
    reference = shipment_no or order_no
    try:
        if not reference:
            raise ValidationFailed(fields={"shipment_no": [_("请填写包裹号或订单号")]})
        carrier, tracking_no = tracking_no_check(
            carrier=_carrier_code(_cell(row.get("carrier"))), tracking_no=_cell(row.get("tracking_no"))
        )
        if shipment_no:
            shipment = _shipment_by_no(shipment_no, order_no)
        else:
            shipment = _shipment_of_order(order_no, carrier, tracking_no)
        shipment, changed = shipment_ship(shipment=shipment, actor=actor, carrier=carrier, tracking_no=tracking_no)
    except (DomainError, ConcurrentTransition) as error:
        return RowResult(number, reference, RowStatus.ERROR, _error_text(error))
    status = RowStatus.OK if changed else RowStatus.UNCHANGED
    return RowResult(number, reference, status, shipment_no=shipment.shipment_no)


def _shipment_by_no(shipment_no: str, order_no: str) -> Shipment:
    shipment = Shipment.objects.filter(shipment_no=shipment_no).first()
    if shipment is None:
        raise ValidationFailed(fields={"shipment_no": [_("没有这个包裹：%(no)s") % {"no": shipment_no}]})
    if order_no and not ShipmentLine.objects.filter(shipment=shipment, order__order_no=order_no).exists():
        raise ValidationFailed(
            fields={"order_no": [_("订单 %(order)s 不在包裹 %(no)s 中") % {"order": order_no, "no": shipment_no}]}
        )
    return shipment


def _shipment_of_order(order_no: str, carrier: str, tracking_no: str) -> Shipment:
    """The order's one parcel to ship: the one that already left with this number (so the row is
    unchanged), else its only parcel not yet shipped. Several open parcels (a split order) are
    ambiguous: the row must name the parcel.
    """
    order = Order.objects.filter(order_no=order_no).first()
    if order is None:
        raise ValidationFailed(fields={"order_no": [_("没有这个订单：%(no)s") % {"no": order_no}]})
    parcels = list(
        Shipment.objects.filter(lines__order_id=order.pk)
        .exclude(status=ShipmentStatus.CANCELLED)
        .distinct()
        .order_by("pk")
    )
    for parcel in parcels:
        if (parcel.carrier, parcel.tracking_no) == (carrier, tracking_no):
            return parcel
    open_parcels = [parcel for parcel in parcels if parcel.status in OPEN_STATUSES]
    if len(open_parcels) == 1:
        return open_parcels[0]
    if len(open_parcels) > 1:
        raise ValidationFailed(
            fields={
                "order_no": [
                    _("订单有 %(n)d 个待发货包裹（%(nos)s），请按包裹号导入")
                    % {"n": len(open_parcels), "nos": ", ".join(p.shipment_no for p in open_parcels)}
                ]
            }
        )
    if parcels:
        raise InvalidTransition(
            _("订单的包裹已用其他运单号发货：%(nos)s") % {"nos": ", ".join(p.tracking_no for p in parcels)},
            details={"order_no": order_no, "action": "ship"},
        )
    raise InvalidTransition(
        _("订单 %(no)s 还没有待发货的包裹（状态：%(status)s）")
        % {"no": order_no, "status": order.get_status_display()},
        details={"order_no": order_no, "action": "ship"},
    )


def _carrier_code(value: str) -> str:
    """A carrier's Kuaidi100 code as given, or the code of its Chinese name (顺丰速运 → shunfeng)."""
    by_label = {str(label): code for code, label in Carrier.choices}
    return by_label.get(value, value.lower())


def _cell(value: Any) -> str:
    """A spreadsheet cell as text: Excel stores a digits-only tracking number as a number."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _error_text(error: Exception) -> str:
    fields = getattr(error, "fields", None)
    if fields:
        return _("；").join(str(message) for messages in fields.values() for message in messages)
    return str(getattr(error, "message", error))


# --- files ------------------------------------------------------------------------------


def shipment_rows_read(file: IO[bytes], *, name: str) -> list[dict[str, Any]]:
    """The rows of a CSV (UTF-8, UTF-8 with BOM as Excel writes it, or GB18030) or XLSX file
    (its first sheet), keyed by our column names, each with its row number in the file.
    Blank rows are skipped. A file without the needed columns is a ValidationFailed on `file`.
    """
    table = table_read(file, name=name)
    columns = _columns(table[0])
    rows = []
    for number, cells in enumerate(table[1:], start=2):
        if not any(_cell(c) for c in cells):
            continue
        row = {key: (cells[i] if i < len(cells) else None) for key, i in columns.items()}
        rows.append({"row": number, **row})
        if len(rows) > MAX_ROWS:
            raise ValidationFailed(fields={"file": [_("一次最多导入 %(n)d 行") % {"n": MAX_ROWS}]})
    return rows


def table_read(file: IO[bytes], *, name: str) -> list[list[Any]]:
    """The cells of a CSV (UTF-8, UTF-8 with BOM, GB18030) or XLSX file (first sheet), header
    first; a ValidationFailed on `file` for another kind of file or an empty one."""
    lowered = name.lower()
    if lowered.endswith(".csv"):
        table = _csv_table(file.read())
    elif lowered.endswith(".xlsx"):
        table = _xlsx_table(file)
    else:
        raise ValidationFailed(fields={"file": [_("请上传 CSV 或 XLSX 文件")]})
    if not table:
        raise ValidationFailed(fields={"file": [_("文件是空的")]})
    return table


def cell_text(value: Any) -> str:
    return _cell(value)


def _columns(header: list[Any]) -> dict[str, int]:
    names = [_cell(cell).lower() for cell in header]
    columns = {}
    for key, aliases in COLUMN_ALIASES.items():
        for index, name in enumerate(names):
            if name in aliases:
                columns[key] = index
                break
    missing = [key for key in ("carrier", "tracking_no") if key not in columns]
    if "shipment_no" not in columns and "order_no" not in columns:
        missing.append("shipment_no / order_no")
    if missing:
        raise ValidationFailed(
            fields={
                "file": [
                    _("第一行缺少列：%(missing)s（需要 shipment_no 或 order_no、carrier、tracking_no）")
                    % {"missing": ", ".join(missing)}
                ]
            }
        )
    return columns


def _csv_table(raw: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        return list(csv.reader(io.StringIO(text, newline="")))
    raise ValidationFailed(fields={"file": [_("无法识别文件编码，请另存为 UTF-8 CSV")]})


def _xlsx_table(file: IO[bytes]) -> list[list[Any]]:
    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as error:
        raise ValidationFailed(fields={"file": [_("无法读取 XLSX 文件：%(e)s") % {"e": error}]}) from error
    try:
        return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
    finally:
        workbook.close()
