"""manage.py import_statement --channel alipay|wechatpay PATH

Differences are finance cases, not errors: the command exits 0 whenever the file could
be read, and non-zero only when it could not.
"""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path
from typing import IO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.models import GATEWAY_CHANNELS
from payments.reconciliation import (
    STATEMENT_TZ,
    TIME_FORMAT,
    StatementUnreadable,
    statement_import,
    statement_report,
)

RESULT_LABELS = {
    "missing_here": "我方缺失",
    "amount_differs": "金额不符",
    "missing_at_gateway": "渠道缺失",
    "bad_row": "无法解析",
}
KIND_LABELS = {"payment": "收款", "refund": "退款", "": "-"}


def _data_rows(raw: bytes) -> int:
    """Rows after the header, skipping blanks and # comments (ASCII-safe in GBK too)."""
    rows = sum(1 for line in raw.splitlines() if line.strip() and not line.lstrip().startswith(b"#"))
    return max(rows - 1, 0)


def _local_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=STATEMENT_TZ)
    except ValueError:
        raise CommandError(f"时间格式应为 YYYY-MM-DD HH:MM:SS（北京时间）：{text}") from None


class ProgressBar:
    """A plain text bar on stderr; redrawn whenever the import reports progress."""

    WIDTH = 30

    def __init__(self, stream: IO[str], total: int) -> None:
        self.stream, self.total = stream, total

    def update(self, done: int) -> None:
        share = min(done / self.total, 1.0) if self.total else 1.0
        filled = int(share * self.WIDTH)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{self.total} 行")
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class Command(BaseCommand):
    help = "导入渠道对账单（CSV），逐笔与支付/退款记录核对，每处差异开一张财务复核单。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="对账单 CSV 文件（UTF-8 或 GBK）")
        parser.add_argument("--channel", required=True, choices=[str(c) for c in GATEWAY_CHANNELS])
        parser.add_argument("--period-start", help="账期开始（北京时间 YYYY-MM-DD HH:MM:SS），默认取首行时间")
        parser.add_argument("--period-end", help="账期结束（北京时间 YYYY-MM-DD HH:MM:SS），默认取末行时间")
        parser.add_argument("--imported-by", default="", help="导入人，默认当前系统用户")

    def handle(self, *args, path: str, channel: str, **options) -> None:
        source = Path(path)
        try:
            raw = source.read_bytes()
        except OSError as err:
            raise CommandError(f"无法读取文件 {path}：{err}") from err
        bar = ProgressBar(self.stderr, _data_rows(raw))
        try:
            statement = statement_import(
                channel=channel,
                file=io.BytesIO(raw),
                file_name=source.name,
                imported_by=options["imported_by"] or f"cli:{os.environ.get('USER', 'unknown')}",
                progress=bar.update,
                period_start=_local_time(options["period_start"]) if options["period_start"] else None,
                period_end=_local_time(options["period_end"]) if options["period_end"] else None,
            )
        except StatementUnreadable as err:
            bar.finish()
            raise CommandError(f"对账单无法读取：{err.message} {err.details or ''}".rstrip()) from err
        bar.finish()
        self._print(statement_report(statement))

    def _print(self, report: dict) -> None:
        def when(value) -> str:
            return value.astimezone(STATEMENT_TZ).strftime(TIME_FORMAT) if value else "-"

        write = self.stdout.write
        write(
            f"对账单 #{report['statement_id']} {report['channel']} {report['file_name']}"
            f"（账期 {when(report['period_start'])} ~ {when(report['period_end'])}）"
        )
        write(f"  共 {report['lines_total']} 行")
        write(f"  一致 matched: {report['matched']}")
        write(f"  我方缺失 missing here: {report['missing_here']}")
        write(f"  渠道缺失 missing at gateway: {report['missing_at_gateway']}")
        write(f"  金额不符 amount differs: {report['amount_differs']}")
        write(f"  无法解析 bad rows: {report['bad_rows']}")
        if not report["discrepancies"]:
            write(self.style.SUCCESS("无差异"))
            return
        write(f"差异 {len(report['discrepancies'])} 处（均已开复核单）：")
        for item in report["discrepancies"]:
            row = f" 第{item['row']}行" if item["row"] else ""
            write(
                f"  [{RESULT_LABELS.get(item['result'], item['result'])}] {KIND_LABELS.get(item['kind'], item['kind'])}"
                f" {item['out_trade_no'] or '-'} 渠道号 {item['trade_no'] or '-'}"
                f" 我方 {item['our_amount'] if item['our_amount'] is not None else '-'}"
                f" 渠道 {item['their_amount'] if item['their_amount'] is not None else '-'}"
                f"{row} 复核单 #{item['case_id']}"
            )
