"""Writing RecBole atomic files, and writing a whole dataset folder atomically.

RecBole reads atomic files with pandas' default quoting, so a field must never hold a tab, a
newline or a double quote: :func:`clean_text` maps them away. :func:`staged_dataset_dir` gives a
temporary sibling folder to write into and renames it into place only when the block finishes
without an error, so an interrupted build leaves the previous dataset (or nothing), never a
half-written one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str | None) -> str:
    """Text safe for one TSV field: whitespace (tabs, CR, LF, ...) collapsed to single spaces,
    ``"`` replaced by ``'``, stripped."""
    if not text:
        return ""
    return _WHITESPACE.sub(" ", text.replace('"', "'")).strip()


def format_number(value: float) -> str:
    """A float as the shortest exact text, integers without ``.0`` (so output is stable)."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def write_atomic_file(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    """Write one atomic file: a ``field:type`` header line, then tab-separated rows.

    Values must already be strings without tabs/newlines (see :func:`clean_text`); a value that
    still has one is a bug and raises ``ValueError``. Returns the number of rows written.
    """
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            line = "\t".join(row)
            if line.count("\t") != len(header) - 1 or "\n" in line or "\r" in line:
                raise ValueError(f"{path.name}: row {n + 1} does not fit the header: {row!r}")
            f.write(line + "\n")
            n += 1
    return n


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def staged_dataset_dir(out_root: Path, name: str) -> Iterator[Path]:
    """Yield a fresh temporary folder ``<out_root>/.<name>.tmp-<pid>``; on a clean exit, make it
    ``<out_root>/<name>``.

    An existing dataset is replaced only at the very end: it is renamed aside, the new folder is
    renamed in, then the old one is deleted. On any exception (Ctrl-C included) the temporary
    folder is deleted and the existing dataset is left untouched.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    final = out_root / name
    tmp = out_root / f".{name}.tmp-{os.getpid()}"
    _remove(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out_root / f".{name}.old-{os.getpid()}"
    try:
        if final.exists() or final.is_symlink():
            _remove(old)
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        # put the previous dataset back if it was moved aside and the new one is not in place
        if old.exists() and not final.exists():
            os.replace(old, final)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old.exists():
        _remove(old)
    logger.info("wrote %s", final)
