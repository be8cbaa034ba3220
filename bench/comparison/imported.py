"""Cells taken from a committed ``<table>_cells.csv`` (``--cells-from-csv``).

The cell cache under ``--work`` lives on one machine; the per-seed cells committed beside each
table are what survives. With ``--cells-from-csv`` a planned cell that is not cached is read
from the line of its row, β and seed in ``<out>/<task>/<table>_cells.csv`` (when there is one),
so that a table gains rows or β columns without rerunning the grid. Such a line carries the
metrics, the best epoch, how training ended, the size search's choice and the seconds (and
whether they count a resumed run's last try only), not the run's other records; the table's
notes count the imported cells. Only a line of the same row label, β and seed is taken: the
overrides are not in the file, so the command must be the one that wrote it (the table's own
**Command**). A variant of the full model (ablation, sweeps) trains at the sizes the full model
chose; its line is taken only while the file's full-model line of the same β and seed records
that choice (``chosen``), so a variant whose full model has since chosen otherwise (a composed
candidate) runs again.
"""

from __future__ import annotations

import csv
from pathlib import Path

from _grid import SECONDS_COUNTED, load_cell, write_json

from .plan import (
    SIZES_FIXED,
    Entry,
    fixed_size_overrides,
    searches_sizes,
    settings_of_text,
    variant_sizes,
)
from .tables import CHOSEN, COMPOSED, COMPOSED_KEY, IMPORTED_SUFFIX
from .tasks import Task

IMPORTED = "imported_from"


def import_cells(task: Task, entries: list[Entry], out: Path, work: Path) -> int:
    """Write the cache file of every entry of ``task`` not cached whose line is in its table's
    committed cells CSV; returns how many were written."""
    lines: dict[str, dict[tuple[str, str, str], dict]] = {}
    full_rows = {(e.table, e.beta, e.seed): e.row for e in entries if searches_sizes(e.cell)}
    written = 0
    for entry in entries:
        path = work / task.name / entry.cell.filename()
        if load_cell(path) is not None:
            continue
        source = out / task.name / f"{entry.table}_cells.csv"
        if entry.table not in lines:
            lines[entry.table] = _read(source)
        line = lines[entry.table].get((entry.row, f"{entry.beta:g}", str(entry.seed)))
        if line is None:
            continue
        full_row = full_rows.get((entry.table, entry.beta, entry.seed))
        if full_row is not None and SIZES_FIXED in entry.cell.overrides:
            full_line = lines[entry.table].get((full_row, f"{entry.beta:g}", str(entry.seed)))
            if full_line is not None and not _trained_at(entry, full_line.get(CHOSEN) or ""):
                continue  # the line was trained at another choice of the full model
        write_json(_result(line, task.metrics, source), path)
        written += 1
    return written


def _trained_at(entry: Entry, chosen: str) -> bool:
    """Whether a variant entry trains at the sizes of the full model's recorded ``chosen``
    (nothing recorded: nothing to contradict)."""
    sizes = variant_sizes(entry.cell.overrides, fixed_size_overrides(settings_of_text(chosen)))
    return all(size in entry.cell.overrides for size in sizes)


def _read(path: Path) -> dict[tuple[str, str, str], dict]:
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    first = next(iter(rows[0]))  # the row label's column: model, variant, T, ...
    return {(row[first], row["beta"], row["seed"]): row for row in rows}


def _result(line: dict, metrics, source: Path) -> dict:
    """A cell result as a run writes it, from one CSV line."""
    parts = {
        part: {m: float(line[f"{part}/{m}"]) for m in metrics if line.get(f"{part}/{m}")}
        for part in ("valid", "test")
    }
    selection = (
        "best epoch on the validation users"
        if parts["valid"]
        else "last epoch (no validation users)"
    )
    run = {"model_selection": selection, IMPORTED: str(source)}
    if line.get("best_epoch"):
        run["best_epoch"] = int(line["best_epoch"])
    if line.get("stopped_by"):
        run["stopped_by"] = line["stopped_by"]
    if line.get(COMPOSED):
        run[COMPOSED_KEY] = f"{line[COMPOSED]}{IMPORTED_SUFFIX}{source.name})"
    if line.get(CHOSEN):  # the size search's choice alone: the other candidates are not kept
        run["size_search"] = [{"settings": settings_of_text(line[CHOSEN]), "chosen": True}]
    result = {**parts, "seconds": float(line.get("seconds") or "nan"), "run": run}
    if line.get(SECONDS_COUNTED):  # a resumed cell whose earlier tries' seconds are unknown
        result.update({"resumed": True, SECONDS_COUNTED: line[SECONDS_COUNTED]})
    return result


def imported_count(results: list[dict]) -> int:
    return sum(1 for r in results if IMPORTED in (r.get("run") or {}))
