"""manage.py import_cod_settlement FILE: match a carrier's cash-on-delivery settlement file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from fulfillment.cod import CodRowStatus, cod_settlement_import, cod_settlement_rows_read
from fulfillment.management.staff import staff_actor
from oms.errors import ValidationFailed
from orders.events import Actor


class Command(BaseCommand):
    help = (
        "Match a carrier's COD settlement file (CSV or XLSX: 运单号/tracking_no, 代收金额/amount): record money "
        "not yet recorded, check money already recorded, open a finance case where the amount differs. "
        "Idempotent. Exits 1 if any row failed or differed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--user", help="act as this staff user (财务); default: the system")

    def handle(self, *args, file: Path, user: str | None, **options):
        actor = staff_actor(user) if user else Actor.system(f"import_cod_settlement:{file.name}")
        try:
            with file.open("rb") as handle:
                rows = cod_settlement_rows_read(handle, name=file.name)
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error}") from error
        except ValidationFailed as error:
            raise CommandError("; ".join(m for ms in (error.fields or {}).values() for m in ms)) from error
        results = cod_settlement_import(rows=rows, actor=actor)
        counts = Counter(result.status for result in results)
        problems = [r for r in results if r.status in (CodRowStatus.ERROR, CodRowStatus.MISMATCH)]
        for result in problems:
            self.stderr.write(f"row {result.row} {result.tracking_no or '-'}: {result.status_display} {result.message}")
        self.stdout.write(
            f"{len(results)} rows: {counts[CodRowStatus.COLLECTED]} recorded, {counts[CodRowStatus.UNCHANGED]} "
            f"already recorded, {counts[CodRowStatus.MISMATCH]} amount differs (finance case), "
            f"{counts[CodRowStatus.ERROR]} failed."
        )
        if problems:
            raise CommandError(f"{len(problems)} of {len(results)} rows need a look.")
