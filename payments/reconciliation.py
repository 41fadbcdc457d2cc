"""Gateway statements (对账单): import a bill, match it line by line against our payments
and refunds, and open a finance case for every difference.

The gateway's bill is the other half of the ledger. A line we cannot match means money
moved that we did not record (`missing_here`); one of our successes the bill does not
list means we recorded money that did not move (`missing_at_gateway`). Every difference
becomes a `statement_mismatch` case with a dedupe key built from the gateway's own
identifiers, so importing the same bill again, or an overlapping one, opens nothing new.

A case is tagged with every statement that found it (`data["statements"]`), which is
how `statement_report` lists the differences of one import.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from oms.errors import DomainError
from orders.models import Order

from .models import Payment, ReconciliationCase, Refund, StatementImport, StatementLine
from .services import case_open

STATEMENT_TZ = ZoneInfo("Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CHUNK_SIZE = 1000
PROGRESS_EVERY = 1000
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")  # MONEY: 12 digits, 2 after the point

# Canonical column -> the header names the gateways use for it.
COLUMNS: dict[str, tuple[str, ...]] = {
    "trade_no": ("trade_no", "渠道交易号"),
    "out_trade_no": ("out_trade_no", "商户订单号"),
    "amount": ("amount", "金额"),
    "type": ("type", "类型"),
    "time": ("time", "时间"),
}
LINE_KINDS: dict[str, str] = {
    "payment": StatementLine.Kind.PAYMENT,
    "交易": StatementLine.Kind.PAYMENT,
    "收款": StatementLine.Kind.PAYMENT,
    "支付": StatementLine.Kind.PAYMENT,
    "refund": StatementLine.Kind.REFUND,
    "退款": StatementLine.Kind.REFUND,
}

Result = StatementLine.Result
Kind = StatementLine.Kind
MISSING_AT_GATEWAY = "missing_at_gateway"
BAD_ROW = "bad_row"


class StatementUnreadable(DomainError):
    code = "statement_unreadable"
    default_message = gettext_lazy("对账单文件无法读取")


# --- parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedLine:
    row: int
    kind: str
    gateway_trade_no: str
    out_trade_no: str
    amount: Decimal
    occurred_at: datetime


@dataclass(frozen=True)
class BadRow:
    row: int
    error: str
    raw: str


@dataclass
class ParsedStatement:
    sha256: str
    lines: list[ParsedLine] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM), else GBK/GB18030, which is what Alipay exports."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise StatementUnreadable(_("对账单编码无法识别（支持 UTF-8 与 GBK）"))


def _cell(value: str) -> str:
    # WeChat Pay prefixes numbers with a backtick so spreadsheets keep them as text.
    return value.strip().lstrip("`").strip()


def _split(line: str) -> list[str]:
    return [_cell(value) for value in next(csv.reader([line]))]


def _header_map(cells: list[str]) -> dict[str, int]:
    names = [cell.lower() for cell in cells]
    positions: dict[str, int] = {}
    for column, aliases in COLUMNS.items():
        for alias in aliases:
            if alias in names:
                positions[column] = names.index(alias)
                break
    missing = [column for column in COLUMNS if column not in positions]
    if missing:
        raise StatementUnreadable(
            _("对账单表头缺少列：%(cols)s") % {"cols": ", ".join(missing)},
            details={"missing": missing, "header": cells},
        )
    return positions


def _parse_amount(text: str, kind: str) -> Decimal:
    try:
        amount = Decimal(text.replace(",", "").replace("¥", ""))
    except InvalidOperation:
        raise ValueError(_("金额无法识别：%(v)s") % {"v": text}) from None
    if not amount.is_finite() or amount != amount.quantize(CENT, rounding="ROUND_DOWN"):
        raise ValueError(_("金额最多两位小数：%(v)s") % {"v": text})
    if kind == Kind.REFUND:
        amount = abs(amount)  # Alipay lists refunds as negative amounts
    if amount <= 0 or amount > MAX_AMOUNT:
        raise ValueError(_("金额超出范围：%(v)s") % {"v": text})
    return amount.quantize(CENT)


def _parse_row(row: int, cells: list[str], columns: dict[str, int]) -> ParsedLine:
    if len(cells) <= max(columns.values()):
        raise ValueError(_("列数不足"))
    kind = LINE_KINDS.get(cells[columns["type"]].lower())
    if kind is None:
        raise ValueError(_("类型无法识别：%(v)s") % {"v": cells[columns["type"]]})
    out_trade_no, trade_no = cells[columns["out_trade_no"]], cells[columns["trade_no"]]
    if not out_trade_no or len(out_trade_no) > 64 or len(trade_no) > 64:
        raise ValueError(_("商户订单号或渠道交易号为空或过长"))
    try:
        naive = datetime.strptime(cells[columns["time"]], TIME_FORMAT)
    except ValueError:
        raise ValueError(_("时间无法识别：%(v)s") % {"v": cells[columns["time"]]}) from None
    return ParsedLine(
        row=row,
        kind=kind,
        gateway_trade_no=trade_no,
        out_trade_no=out_trade_no,
        amount=_parse_amount(cells[columns["amount"]], kind),
        occurred_at=naive.replace(tzinfo=STATEMENT_TZ),
    )


def statement_parse(file: IO[str] | IO[bytes]) -> ParsedStatement:
    """Read a bill in the gateway format. Row numbers are the file's physical line numbers."""
    try:
        content = file.read()
    except OSError as err:
        raise StatementUnreadable(details={"error": str(err)}) from err
    raw = content.encode("utf-8") if isinstance(content, str) else content
    text = content.lstrip("\ufeff") if isinstance(content, str) else _decode(content)
    parsed = ParsedStatement(sha256=hashlib.sha256(raw).hexdigest())
    columns: dict[str, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            cells = _split(line)
        except csv.Error as err:
            if columns is None:
                raise StatementUnreadable(details={"error": str(err)}) from err
            parsed.bad_rows.append(BadRow(number, str(err), line[:200]))
            continue
        if columns is None:
            columns = _header_map(cells)
            continue
        try:
            parsed.lines.append(_parse_row(number, cells, columns))
        except ValueError as err:
            parsed.bad_rows.append(BadRow(number, str(err), line[:200]))
    if columns is None:
        raise StatementUnreadable(_("对账单为空或没有表头"))
    return parsed


# --- matching --------------------------------------------------------------------------


@dataclass
class _Discrepancy:
    """One difference, before it becomes (or finds) its case."""

    reason: str
    key: str
    summary: str
    kind: str = ""
    out_trade_no: str = ""
    gateway_trade_no: str = ""
    our_amount: Decimal | None = None
    their_amount: Decimal | None = None
    occurred_at: datetime | None = None
    row: int | None = None
    payment: Payment | None = None
    refund: Refund | None = None
    order_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _dedupe_key(*parts: object) -> str:
    key = "stmt:" + ":".join(str(part) for part in parts)
    if len(key) > 200:  # ReconciliationCase.dedupe_key; truncating could merge two cases
        key = f"stmt:{parts[0]}:{parts[1]}:h:{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def _line_key(channel: str, line: ParsedLine, reason: str) -> str:
    """Built from what the gateway says, so the same line in any later bill finds the same case."""
    stamp = line.occurred_at.strftime("%Y%m%d%H%M%S")
    return _dedupe_key(channel, line.kind, line.out_trade_no, line.gateway_trade_no, stamp, line.amount, reason)


def _kind_label(kind: str) -> str:
    return str(Kind(kind).label)


def _take(candidates: list[Any], used: set[int], ref: str, *, amount: Decimal | None) -> Any | None:
    """The first unused candidate (of `amount`, if given), preferring the gateway's own reference."""
    fitting = [c for c in candidates if c.pk not in used and (amount is None or c.amount == amount)]
    for candidate in fitting:
        their_ref = candidate.gateway_trade_no if isinstance(candidate, Payment) else candidate.gateway_refund_no
        if ref and their_ref == ref:
            return candidate
    return fitting[0] if fitting else None


@dataclass
class _Match:
    line: ParsedLine
    result: str
    record: Payment | Refund | None = None


def _match_group(lines: list[ParsedLine], candidates: list[Payment] | list[Refund], used: set[int]) -> Iterator[_Match]:
    """Exact amounts first, so a differing line cannot take the record an exact line needs."""
    pending: list[ParsedLine] = []
    for line in lines:
        record = _take(candidates, used, line.gateway_trade_no, amount=line.amount)
        if record is None:
            pending.append(line)
            continue
        used.add(record.pk)
        yield _Match(line, Result.MATCHED, record)
    for line in pending:
        record = _take(candidates, used, line.gateway_trade_no, amount=None)
        if record is None:
            yield _Match(line, Result.MISSING_HERE)
            continue
        used.add(record.pk)
        yield _Match(line, Result.AMOUNT_DIFFERS, record)


T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = CHUNK_SIZE) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Matcher:
    """Matches the lines of one statement; holds what was claimed so nothing counts twice."""

    def __init__(self, *, channel: str) -> None:
        self.channel = channel
        self.used_payments: set[int] = set()
        self.used_refunds: set[int] = set()
        self.matches: list[_Match] = []
        self.discrepancies: list[_Discrepancy] = []
        self._occurrences: dict[str, int] = defaultdict(int)

    def match_chunk(self, groups: dict[tuple[str, str], list[ParsedLine]], out_trade_nos: Sequence[str]) -> None:
        payments = {
            p.out_trade_no: p for p in Payment.objects.filter(channel=self.channel, out_trade_no__in=out_trade_nos)
        }
        refunds: dict[int, list[Refund]] = defaultdict(list)
        refund_payments = [p.pk for p in payments.values() if (Kind.REFUND, p.out_trade_no) in groups]
        if refund_payments:
            for refund in Refund.objects.filter(
                payment_id__in=refund_payments, status=Refund.Status.SUCCEEDED
            ).order_by("succeeded_at", "pk"):
                refunds[refund.payment_id].append(refund)
        for out_trade_no in out_trade_nos:
            payment = payments.get(out_trade_no)
            for kind in (Kind.PAYMENT, Kind.REFUND):
                lines = groups.get((kind, out_trade_no))
                if not lines:
                    continue
                if kind == Kind.PAYMENT:
                    succeeded = [payment] if payment and payment.status == Payment.Status.SUCCEEDED else []
                    found = _match_group(lines, succeeded, self.used_payments)
                else:
                    found = _match_group(lines, refunds[payment.pk] if payment else [], self.used_refunds)
                for match in found:
                    self.matches.append(match)
                    if match.result != Result.MATCHED:
                        self.discrepancies.append(self._line_discrepancy(match, payment))

    def _line_discrepancy(self, match: _Match, payment: Payment | None) -> _Discrepancy:
        line, record = match.line, match.record
        key = _line_key(self.channel, line, match.result)
        self._occurrences[key] += 1
        if self._occurrences[key] > 1:  # the same line twice in one bill: each copy is a difference
            key = f"{key}:{self._occurrences[key]}"[:200]
        values = {"kind": _kind_label(line.kind), "no": line.out_trade_no, "a": line.amount}
        if match.result == Result.AMOUNT_DIFFERS:
            assert record is not None
            summary = _("对账单%(kind)s金额不符 %(no)s：我方 %(ours)s 元，渠道 %(a)s 元") % {
                **values,
                "ours": record.amount,
            }
        elif line.kind == Kind.PAYMENT and payment is not None and payment.status != Payment.Status.SUCCEEDED:
            summary = _("对账单有收款 %(no)s %(a)s 元，我方支付单状态为「%(s)s」") % {
                **values,
                "s": payment.get_status_display(),
            }
        elif line.kind == Kind.PAYMENT and payment is not None:
            summary = _("对账单重复收款 %(no)s %(a)s 元（渠道交易号 %(t)s）") % {**values, "t": line.gateway_trade_no}
        else:
            summary = _("对账单有%(kind)s %(no)s %(a)s 元（渠道交易号 %(t)s），我方没有对应记录") % {
                **values,
                "t": line.gateway_trade_no,
            }
        return _Discrepancy(
            reason=match.result,
            key=key,
            summary=summary,
            kind=line.kind,
            out_trade_no=line.out_trade_no,
            gateway_trade_no=line.gateway_trade_no,
            our_amount=record.amount if record is not None else None,
            their_amount=line.amount,
            occurred_at=line.occurred_at,
            row=line.row,
            payment=payment,
            refund=record if isinstance(record, Refund) else None,
            order_id=payment.order_id if payment is not None else None,
        )

    def find_missing_at_gateway(self, start: datetime, end: datetime) -> None:
        """Our successes inside the bill's period that no line claimed."""
        payment_ids = [
            pk
            for pk in Payment.objects.filter(
                channel=self.channel, status=Payment.Status.SUCCEEDED, paid_at__gte=start, paid_at__lte=end
            ).values_list("pk", flat=True)
            if pk not in self.used_payments
        ]
        for ids in _chunks(payment_ids):
            for payment in Payment.objects.filter(pk__in=ids).order_by("paid_at", "pk"):
                self.discrepancies.append(
                    _Discrepancy(
                        reason=MISSING_AT_GATEWAY,
                        key=_dedupe_key(
                            self.channel,
                            Kind.PAYMENT,
                            payment.out_trade_no,
                            payment.gateway_trade_no,
                            MISSING_AT_GATEWAY,
                        ),
                        summary=_("我方支付 %(no)s %(a)s 元已成功（%(t)s），对账单中没有")
                        % {
                            "no": payment.out_trade_no,
                            "a": payment.amount,
                            "t": _local(payment.paid_at),
                        },
                        kind=Kind.PAYMENT,
                        out_trade_no=payment.out_trade_no,
                        gateway_trade_no=payment.gateway_trade_no,
                        our_amount=payment.amount,
                        occurred_at=payment.paid_at,
                        payment=payment,
                        order_id=payment.order_id,
                    )
                )
        refund_ids = [
            pk
            for pk in Refund.objects.filter(
                payment__channel=self.channel,
                status=Refund.Status.SUCCEEDED,
                succeeded_at__gte=start,
                succeeded_at__lte=end,
            ).values_list("pk", flat=True)
            if pk not in self.used_refunds
        ]
        for ids in _chunks(refund_ids):
            for refund in Refund.objects.filter(pk__in=ids).select_related("payment").order_by("succeeded_at", "pk"):
                assert refund.payment is not None
                self.discrepancies.append(
                    _Discrepancy(
                        reason=MISSING_AT_GATEWAY,
                        key=_dedupe_key(
                            self.channel,
                            Kind.REFUND,
                            refund.payment.out_trade_no,
                            refund.out_refund_no,
                            MISSING_AT_GATEWAY,
                        ),
                        summary=_("我方退款 %(no)s %(a)s 元已成功（%(t)s），对账单中没有")
                        % {
                            "no": refund.out_refund_no,
                            "a": refund.amount,
                            "t": _local(refund.succeeded_at),
                        },
                        kind=Kind.REFUND,
                        out_trade_no=refund.payment.out_trade_no,
                        gateway_trade_no=refund.gateway_refund_no,
                        our_amount=refund.amount,
                        occurred_at=refund.succeeded_at,
                        payment=refund.payment,
                        refund=refund,
                        order_id=refund.order_id,
                        extra={"out_refund_no": refund.out_refund_no},
                    )
                )


def _local(at: datetime | None) -> str:
    return at.astimezone(STATEMENT_TZ).strftime(TIME_FORMAT) if at else ""


def _bad_row_discrepancy(channel: str, sha256: str, bad: BadRow) -> _Discrepancy:
    return _Discrepancy(
        reason=BAD_ROW,
        key=_dedupe_key(channel, BAD_ROW, sha256, bad.row),
        summary=_("对账单第 %(row)s 行无法解析：%(e)s") % {"row": bad.row, "e": bad.error},
        row=bad.row,
        extra={"error": bad.error, "raw": bad.raw},
    )


# --- cases -----------------------------------------------------------------------------


def _open_cases(*, statement: StatementImport, discrepancies: list[_Discrepancy]) -> None:
    """One case per difference: new ones through case_open, known ones only get this statement's tag."""
    tag = {str(statement.pk): statement.file_name}
    existing: dict[str, ReconciliationCase] = {}
    for keys in _chunks([d.key for d in discrepancies]):
        existing.update((c.dedupe_key, c) for c in ReconciliationCase.objects.filter(dedupe_key__in=keys))
    for case in existing.values():
        case.data = {**case.data, "statements": {**case.data.get("statements", {}), **tag}}
    ReconciliationCase.objects.bulk_update(existing.values(), ["data"], batch_size=CHUNK_SIZE)

    new = [d for d in discrepancies if d.key not in existing]
    orders: dict[int, Order] = {}
    for ids in _chunks(sorted({d.order_id for d in new if d.order_id is not None})):
        orders.update(Order.objects.in_bulk(ids))
    for d in new:
        case = case_open(
            type=ReconciliationCase.Type.STATEMENT_MISMATCH,
            dedupe_key=d.key,
            summary=d.summary,
            channel=statement.channel,
            order=orders.get(d.order_id) if d.order_id is not None else None,
            payment=d.payment,
            refund=d.refund,
            out_trade_no=d.out_trade_no,
            expected_amount=d.our_amount,
            actual_amount=d.their_amount,
            reason=d.reason,
            kind=d.kind,
            gateway_trade_no=d.gateway_trade_no,
            occurred_at=d.occurred_at.isoformat() if d.occurred_at else None,
            row=d.row,
            statements=tag,
            **d.extra,
        )
        if str(statement.pk) not in case.data.get("statements", {}):  # opened meanwhile by a concurrent import
            case.data = {**case.data, "statements": {**case.data.get("statements", {}), **tag}}
            case.save(update_fields=["data"])


# --- the service -----------------------------------------------------------------------


def statement_import(
    *,
    channel: str,
    file: IO[str] | IO[bytes],
    file_name: str,
    imported_by: str,
    progress: Callable[[int], None] | None = None,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
) -> StatementImport:
    """Import one bill, record every line with its result and open a case per difference.

    The statement's period is its first..last line time unless given. `lines_total`
    counts every data row, so `lines_total - matched - missing_here - amount_differs`
    is the number of unreadable rows (each one a case). `progress` is called with the
    number of rows handled so far. Raises StatementUnreadable when the file cannot be
    read as a bill at all (encoding, header); then nothing is recorded.
    """
    parsed = statement_parse(file)
    report = progress or (lambda done: None)
    groups: dict[tuple[str, str], list[ParsedLine]] = defaultdict(list)
    for line in parsed.lines:
        groups[(line.kind, line.out_trade_no)].append(line)
    out_trade_nos = sorted({out_trade_no for _kind, out_trade_no in groups})
    times = [line.occurred_at for line in parsed.lines]
    start = period_start or (min(times) if times else None)
    end = period_end or (max(times) if times else None)

    with transaction.atomic():
        statement = StatementImport.objects.create(
            channel=channel,
            file_name=file_name[:200],
            file_sha256=parsed.sha256,
            lines_total=len(parsed.lines) + len(parsed.bad_rows),
            period_start=start,
            period_end=end,
            imported_by=imported_by[:150],
        )
        matcher = _Matcher(channel=channel)
        done = len(parsed.bad_rows)
        report(done)
        for chunk in _chunks(out_trade_nos):
            before = len(matcher.matches)
            matcher.match_chunk(groups, chunk)
            done += len(matcher.matches) - before
            report(done)
        if start is not None and end is not None:
            matcher.find_missing_at_gateway(start, end)

        matcher.matches.sort(key=lambda match: match.line.row)
        StatementLine.objects.bulk_create(
            (
                StatementLine(
                    statement=statement,
                    gateway_trade_no=match.line.gateway_trade_no,
                    out_trade_no=match.line.out_trade_no,
                    kind=match.line.kind,
                    amount=match.line.amount,
                    occurred_at=match.line.occurred_at,
                    result=match.result,
                )
                for match in matcher.matches
            ),
            batch_size=CHUNK_SIZE,
        )
        bad = [_bad_row_discrepancy(channel, parsed.sha256, row) for row in parsed.bad_rows]
        _open_cases(statement=statement, discrepancies=bad + matcher.discrepancies)

        counts = Counter(match.result for match in matcher.matches)
        statement.matched = counts[Result.MATCHED]
        statement.missing_here = counts[Result.MISSING_HERE]
        statement.amount_differs = counts[Result.AMOUNT_DIFFERS]
        statement.missing_at_gateway = sum(1 for d in matcher.discrepancies if d.reason == MISSING_AT_GATEWAY)
        statement.save(update_fields=["matched", "missing_here", "amount_differs", "missing_at_gateway"])
    return statement


# --- the report ------------------------------------------------------------------------

REPORT_ORDER = [Result.MISSING_HERE, Result.AMOUNT_DIFFERS, MISSING_AT_GATEWAY, BAD_ROW]


def statement_report(statement: StatementImport) -> dict[str, Any]:
    """Counts and every difference this import found (from the cases it opened or re-found).

    Each difference: kind, out_trade_no, trade_no, our_amount, their_amount (Decimal or
    None), result, occurred_at, row (for bad rows and line differences), and its case.
    """
    cases = ReconciliationCase.objects.filter(
        type=ReconciliationCase.Type.STATEMENT_MISMATCH,
        dedupe_key__startswith=f"stmt:{statement.channel}:",
        **{"data__statements__has_key": str(statement.pk)},
    ).order_by("pk")
    discrepancies = [
        {
            "kind": case.data.get("kind", ""),
            "out_trade_no": case.out_trade_no,
            "trade_no": case.data.get("gateway_trade_no", ""),
            "our_amount": case.expected_amount,
            "their_amount": case.actual_amount,
            "result": case.data.get("reason", ""),
            "occurred_at": case.data.get("occurred_at"),
            "row": case.data.get("row"),
            "summary": case.summary,
            "case_id": case.pk,
            "case_status": case.status,
        }
        for case in cases
    ]
    rank = {reason: position for position, reason in enumerate(REPORT_ORDER)}
    discrepancies.sort(key=lambda d: (rank.get(d["result"], len(rank)), d["row"] or 0, d["case_id"]))
    return {
        "statement_id": statement.pk,
        "channel": statement.channel,
        "file_name": statement.file_name,
        "file_sha256": statement.file_sha256,
        "period_start": statement.period_start,
        "period_end": statement.period_end,
        "lines_total": statement.lines_total,
        "matched": statement.matched,
        "missing_here": statement.missing_here,
        "missing_at_gateway": statement.missing_at_gateway,
        "amount_differs": statement.amount_differs,
        "bad_rows": statement.lines_total - statement.matched - statement.missing_here - statement.amount_differs,
        "discrepancies": discrepancies,
    }
