"""manage.py import_shipments FILE: batch ship from a CSV or XLSX file (see docs/warehouse-api.md)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from fulfillment.imports import RowResult, RowStatus, shipment_rows_read, shipments_import
from fulfillment.management.staff import staff_actor
from oms.errors import ValidationFailed
from orders.events import Actor

BAR_WIDTH = 30
REDRAW_EVERY_S = 0.2


class ProgressBar:
    """`[#######.......] 1234/10000 ok 1200 unchanged 30 failed 4` on stderr, redrawn in place."""

    def __init__(self, total: int, stream: OutputWrapper) -> None:
        self.total = total
        self.stream = stream
        self.counts: Counter[str] = Counter()
        self.drawn_at = 0.0

    def __call__(self, result: RowResult) -> None:
        self.counts[result.status] += 1
        now = time.monotonic()
        if now - self.drawn_at >= REDRAW_EVERY_S or self.done == self.total:
            self.drawn_at = now
            self.draw()

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def draw(self) -> None:
        filled = BAR_WIDTH * self.done // max(self.total, 1)
        self.write(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total}"
            f" ok {self.counts[RowStatus.OK]} unchanged {self.counts[RowStatus.UNCHANGED]}"
            f" failed {self.counts[RowStatus.ERROR]}"
        )
        if self.done == self.total:
            self.write("\n")
        self.stream.flush()

    def write(self, text: str) -> None:
        self.stream.write(text, style_func=str, ending="")


class Command(BaseCommand):
    help = (
        "Ship parcels from a CSV or XLSX file with the columns shipment_no or order_no, carrier, tracking_no. "
        "Idempotent: rows already shipped with that tracking number are unchanged. Exits 1 if any row failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--user", help="act as this staff user (needs 导入发货 and 发货 permissions); default: the system"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    def handle(self, *args, file: Path, user: str | None, no_progress: bool, **options):
        actor = staff_actor(user) if user else Actor.system(f"import_shipments:{file.name}")
        try:
            with file.open("rb") as handle:
                rows = shipment_rows_read(handle, name=file.name)
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error}") from error
        except ValidationFailed as error:
            raise CommandError("; ".join(m for ms in (error.fields or {}).values() for m in ms)) from error
        progress = None if no_progress else ProgressBar(len(rows), self.stderr)
        results = shipments_import(rows=rows, actor=actor, on_row=progress)
        counts = Counter(result.status for result in results)
        failed = [result for result in results if result.status == RowStatus.ERROR]
        for result in failed:
            self.stderr.write(f"row {result.row} {result.reference or '-'}: {result.message}")
        self.stdout.write(
            f"{len(results)} rows: {counts[RowStatus.OK]} shipped, {counts[RowStatus.UNCHANGED]} unchanged"
            f" (already shipped with that number), {counts[RowStatus.ERROR]} failed."
        )
        if failed:
            raise CommandError(f"{len(failed)} of {len(results)} rows failed; fix them and import the file again.")
