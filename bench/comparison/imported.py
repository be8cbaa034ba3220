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
candidate) runs again. A line of a size search is taken only for a cell that searches the same
way: averaging its candidates (``size_search_average``, the line's ``averaged`` column names the
members) or keeping the best alone (that column empty, or absent from older files).

A MuSiC cell of a size search is taken first from the ``size_search_average`` bench's
committed cells (bench/results/size_search_average_cells.csv, the bench task of the same dataset
and overrides, ``--torch_threads`` and ``--size_search_average`` aside — the main table's
defaults, the dual table's ``--cold_item_ratio`` — β and seed): the "average" row for the row
"MuSiC" whose search averages, the "best candidate" row for the row "MuSiC (best candidate)".
That bench trains the same candidates, one run each, and selects as the search does
(tests/test_size_search.py), so its cell is the cell's own result with the current code, and
both rows come from the same candidate runs; the line carries the metrics (4 decimals), the
members and the candidate runs' seconds summed, no best epoch.
"""

from __future__ import annotations

import functools
from pathlib import Path

from _grid import SECONDS_COUNTED, load_cell, write_json

from .catalogue import OURS
from .plan import (
    AVERAGE_SETTING,
    BEST_CANDIDATE_ROW,
    SIZES_FIXED,
    Entry,
    averages,
    fixed_size_overrides,
    searches_sizes,
    settings_of_text,
    variant_sizes,
)
from .tables import (
    AVERAGED,
    CHOSEN,
    COMPOSED,
    COMPOSED_KEY,
    IMPORTED_SUFFIX,
    MEMBERS_JOIN,
    line_key,
    read_cells_lines,
)
from .tasks import Task

IMPORTED = "imported_from"


def import_cells(task: Task, entries: list[Entry], out: Path, work: Path) -> int:
    """Write the cache file of every entry of ``task`` not cached whose line is in its table's
    committed cells CSV; returns how many were written."""
    lines: dict[str, dict[tuple[str, str, str], dict]] = {}
    bench_cells = functools.cache(_average_bench_cells)  # read once, and only if needed
    full_rows = {(e.table, e.beta, e.seed): e.row for e in entries if searches_sizes(e.cell)}
    written = 0
    for entry in entries:
        path = work / task.name / entry.cell.filename()
        if load_cell(path) is not None:
            continue
        result = _from_average_bench(task, entry, bench_cells)
        if result is not None:  # the bench's cell first: a rebuild keeps saying where it is from
            write_json(result, path)
            written += 1
            continue
        source = out / task.name / f"{entry.table}_cells.csv"
        if entry.table not in lines:
            lines[entry.table] = read_cells_lines(source)
        line = lines[entry.table].get(line_key(entry.row, entry.beta, entry.seed))
        if line is None or not _searched_alike(entry, line):
            continue  # none, or searched otherwise (averaged or not) than the cell will
        full_row = full_rows.get((entry.table, entry.beta, entry.seed))
        if full_row is not None and SIZES_FIXED in entry.cell.overrides:
            full_line = lines[entry.table].get(line_key(full_row, entry.beta, entry.seed))
            if full_line is not None and not _trained_at(entry, full_line.get(CHOSEN) or ""):
                continue  # the line was trained at another choice of the full model
        write_json(_result(line, task.metrics, source), path)
        written += 1
    return written


def _searched_alike(entry: Entry, line: dict) -> bool:
    """Whether a line of a size search (``chosen`` recorded) averaged its candidates exactly
    when the entry's cell does; a line of no search, or an entry that does not search, has
    nothing to contradict."""
    if not line.get(CHOSEN) or not searches_sizes(entry.cell):
        return True
    return bool(line.get(AVERAGED)) == averages(entry.cell)


def _average_bench_cells() -> list:
    """The size_search_average bench's committed outcomes."""
    from size_search_average import CELLS_CSV, read_cells

    return read_cells(CELLS_CSV)


def _chosen_search(settings: dict) -> list[dict]:
    """A run's ``size_search`` record of its best candidate alone (the others are not kept)."""
    return [{"settings": settings, "chosen": True}]


def _averaged_search(members: list[dict]) -> list[dict]:
    """A run's ``size_search`` record of an average of ``members`` (best, the chosen, first)."""
    return [{"settings": m, "chosen": i == 0, "averaged": True} for i, m in enumerate(members)]


def _from_average_bench(task: Task, entry: Entry, bench_cells) -> dict | None:
    """A size-searching MuSiC cell of the main or dual table from the size_search_average
    bench's cells (``bench_cells()``; module docstring): the bench task of the same dataset and
    the same overrides (``--torch_threads`` and ``--size_search_average`` aside); None when
    there is none, it lacks the cell, or the entry is not the row "MuSiC" whose search averages
    nor the row "MuSiC (best candidate)"."""
    from size_search_average import AVERAGE_ROW, BEST_ROW, CELLS_CSV, TASKS, settings_of_label

    if entry.row == OURS and averages(entry.cell):
        bench_row = AVERAGE_ROW
    elif entry.row == BEST_CANDIDATE_ROW and not averages(entry.cell):
        bench_row = BEST_ROW
    else:
        return None
    own = tuple(
        o
        for o in entry.cell.overrides
        if not o.startswith(("--torch_threads=", f"--{AVERAGE_SETTING}="))
    )
    bench_task = next(
        (
            name
            for name, (data, overrides) in TASKS.items()
            if (data, overrides) == (task.name, own)
        ),
        None,
    )
    if bench_task is None:
        return None
    outcome = next(
        (
            o
            for o in bench_cells()
            if (o.task, o.beta, o.seed) == (bench_task, entry.beta, entry.seed)
        ),
        None,
    )
    answer = outcome and next((a for a in outcome.answers if a.row == bench_row), None)
    if answer is None:
        return None
    members = [settings_of_label(m) for m in answer.members]
    if bench_row == AVERAGE_ROW:
        search = _averaged_search(members)
        how = f"the average of {len(members)} of {answer.candidates} candidates"
    else:
        search = _chosen_search(members[0])
        how = f"the best of {answer.candidates} candidates"
    run = {
        "model_selection": "best epoch on the validation users",  # as a run of its own records
        IMPORTED: str(CELLS_CSV),
        COMPOSED_KEY: f"{COMPOSED}: {how}, each its own run (bench/size_search_average.py)",
        "size_search": search,
    }
    parts = {
        part: {m: v for m, v in getattr(answer, part).items() if m in task.metrics}
        for part in ("valid", "test")
    }
    seconds = float("nan") if answer.seconds is None else answer.seconds
    return {**parts, "seconds": seconds, "run": run}


def _trained_at(entry: Entry, chosen: str) -> bool:
    """Whether a variant entry trains at the sizes of the full model's recorded ``chosen``
    (nothing recorded: nothing to contradict)."""
    sizes = variant_sizes(entry.cell.overrides, fixed_size_overrides(settings_of_text(chosen)))
    return all(size in entry.cell.overrides for size in sizes)


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
    if line.get(AVERAGED):  # the candidates averaged, best (chosen) first
        members = [settings_of_text(m) for m in line[AVERAGED].split(MEMBERS_JOIN)]
        run["size_search"] = _averaged_search(members)
    elif line.get(CHOSEN):  # the size search's choice alone
        run["size_search"] = _chosen_search(settings_of_text(line[CHOSEN]))
    result = {**parts, "seconds": float(line.get("seconds") or "nan"), "run": run}
    if line.get(SECONDS_COUNTED):  # a resumed cell whose earlier tries' seconds are unknown
        result.update({"resumed": True, SECONDS_COUNTED: line[SECONDS_COUNTED]})
    return result


def imported_count(results: list[dict]) -> int:
    """The runs read from a table's own cells CSV (not from the averaging bench's)."""
    return sum(1 for r in results if IMPORTED in (r.get("run") or {})) - from_bench_count(results)


def from_bench_count(results: list[dict]) -> int:
    """The runs read from the size_search_average bench's cells."""
    from size_search_average import CELLS_CSV

    return sum(1 for r in results if (r.get("run") or {}).get(IMPORTED) == str(CELLS_CSV))
