"""Errors that name the file, line and field, and the policy for a few bad lines in big dumps."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad input data. ``str()`` reads ``file:line: field 'x': what is wrong``."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        what = f"field '{field}': {message}" if field else message
        super().__init__(f"{where}: {what}")


class BadLineBudget:
    """Counts skipped bad lines of one file; raises once there are more than ``max_bad_lines``.

    Real dumps carry a few broken lines, so a handful is skipped and logged; a file where many
    lines are bad is the wrong file or the wrong layout, so the run stops and says so.
    ``max_bad_lines=0`` makes every bad line an error.
    """

    log_first = 5  # how many skipped lines are logged one by one

    def __init__(self, path: str | Path, max_bad_lines: int = 100):
        self.path = str(path)
        self.max_bad_lines = max_bad_lines
        self.skipped = 0
        self.first_error: DataError | None = None

    def skip(self, error: DataError) -> None:
        """Record a bad line; raise ``error`` (with the count) when over budget."""
        self.skipped += 1
        if self.first_error is None:
            self.first_error = error
        if self.skipped > self.max_bad_lines:
            if self.max_bad_lines == 0:
                raise error
            raise DataError(
                self.path,
                error.line,
                error.field,
                f"{error.message} — {self.skipped} bad lines, more than the allowed "
                f"{self.max_bad_lines} (max_bad_lines); first: {self.first_error}",
            )
        if self.skipped <= self.log_first:
            logger.warning("skipping bad line: %s", error)

    def report(self) -> None:
        if self.skipped:
            logger.warning("%s: skipped %d bad line(s)", self.path, self.skipped)
