"""Logging filters: a refusal is a normal answer, not a crash."""

from __future__ import annotations

import logging


class RefusalsWithoutTraceback(logging.Filter):
    """A 403 (a staff user without the permission) is logged as one warning line, with no
    traceback: the log is for operators, and a refused click is not an error to debug.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
