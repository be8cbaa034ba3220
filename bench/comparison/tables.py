"""Cached results into tables: mean ± std per row and column, MuSiC's improvement row, the
Markdown and CSV forms."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from _grid import (
    LAST_TRY_ONLY,
    SECONDS_COUNTED,
    Row,
    atomic_writer,
    best_rows,
    fmt_stat,
    markdown_table,
    relative_improvement,
)

from .catalogue import OURS, beta_label, metric_label
from .plan import BEST_CANDIDATE_ROW, Entry, chosen_settings, settings_text
from .tasks import Task


@dataclass
class Table:
    rows: list[Row]
    columns: list[tuple[float, str]]  # (β, metric)
    seconds: dict[str, list[float]]
    improvement: dict | None = None  # column -> percent (main table)
    # row -> runs that ended at their epoch limit rather than by early stopping (not converged)
    at_epoch_limit: dict[str, int] = field(default_factory=dict)


AT_LIMIT_MARK = "‡"  # after a row label: some of its runs ended at their epoch limit
# A cell put together from runs made one by one (a size search's candidates, each run on its own,
# the search's choice taken on validation) says so in its JSON; the cells CSV keeps the flag.
COMPOSED_KEY = "composed_from"
COMPOSED = "composed"
COMPOSED_WITH = COMPOSED + " with "  # ... the candidates --compose-candidate added (compose.py)
IMPORTED_SUFFIX = " (the line of "  # how an imported line's composed_from ends (imported.py)
# The settings a run's size search chose on the validation users (``run.size_search``), kept in
# the cells CSV as ``key=value;key=value`` so that the full model's variants can train at them.
CHOSEN = "chosen"
# A search with size_search_average: the candidates it averaged, best first (the first is
# ``chosen``; one alone when no other improved the average), ``key=value;…`` joined by " | ";
# empty for a search without it. Importing a line checks it against the cell's own setting.
AVERAGED = "averaged"
MEMBERS_JOIN = " | "


def counts_last_try_only(result: dict) -> bool:
    """A resumed cell whose seconds are its last try's (cells cached before the tries were
    recorded say nothing of how they were counted)."""
    return bool(result.get("resumed")) and (
        result.get(SECONDS_COUNTED, LAST_TRY_ONLY) == LAST_TRY_ONLY
    )


def collect(task: Task, entries: list[Entry], results: dict, table: str, betas) -> Table:
    rows: dict[str, Row] = {}
    seconds: dict[str, list[float]] = {}
    at_limit: dict[str, int] = {}
    for entry in entries:
        if entry.table != table:
            continue
        row = rows.setdefault(entry.row, Row(entry.row))
        result = results.get(f"{task.name}/{entry.cell.key()}")
        if result is None:
            continue
        seconds.setdefault(entry.row, []).append(result.get("seconds", float("nan")))
        if (result.get("run") or {}).get("stopped_by") == "epoch limit":
            at_limit[entry.row] = at_limit.get(entry.row, 0) + 1
        for metric in task.metrics:
            value = result.get("test", {}).get(metric)
            if value is not None:
                row.values.setdefault((entry.beta, metric), []).append(value)
    columns = [(beta, metric) for beta in betas for metric in task.metrics]
    kept = [row for row in rows.values() if row.values]
    # a metric no row has (MAE of ranking-only models on implicit data) is no column
    columns = [c for c in columns if any(r.stat(c) for r in kept)]
    return Table(kept, columns, seconds, at_epoch_limit=at_limit)


def add_improvement(table: Table) -> None:
    ours = next((r for r in table.rows if r.label == OURS), None)
    # the best candidate alone is MuSiC's own search without the average, not another model
    others = [r for r in table.rows if r.label not in (OURS, BEST_CANDIDATE_ROW)]
    if ours is None or not others:
        return
    best_other = best_rows(others, table.columns, metric_of=lambda c: c[1])
    table.improvement = {}
    for column in table.columns:
        mine = ours.stat(column)
        label = best_other.get(column)
        if mine is None or label is None:
            table.improvement[column] = None
            continue
        other = next(r for r in others if r.label == label).stat(column)
        if mine.n < other.n:  # a partial MuSiC row: its mean is not of the same seeds
            table.improvement[column] = None
            continue
        table.improvement[column] = relative_improvement(mine.mean, other.mean, column[1])


def fmt_cell(stat, bold: bool, n_seeds: int) -> str:
    """A cell's mean ± std; a cell short of seeds says how many it has (its row's other
    columns may be complete)."""
    text = fmt_stat(stat, bold)
    if stat is not None and stat.n < n_seeds:
        text += f" ({stat.n}/{n_seeds} seeds)"
    return text


def render_markdown(table: Table, first_header: str, n_seeds: int) -> str:
    best = best_rows(table.rows, table.columns, metric_of=lambda c: c[1])
    header = [first_header] + [f"{beta_label(b)} {metric_label(m)}" for b, m in table.columns]
    header.append("s/run")
    lines = []
    for row in table.rows:
        cells = [fmt_cell(row.stat(c), best.get(c) == row.label, n_seeds) for c in table.columns]
        secs = [s for s in table.seconds.get(row.label, []) if s == s]
        cells.append(f"{sum(secs) / len(secs):.0f}" if secs else "n/a")
        mark = f" {AT_LIMIT_MARK}" if table.at_epoch_limit.get(row.label) else ""
        lines.append([row.label + mark, *cells])
    if table.improvement is not None:
        cells = [
            "n/a" if (v := table.improvement.get(c)) is None else f"{v:+.2f}%"
            for c in table.columns
        ]
        lines.append([f"*{OURS} vs best other*", *cells, ""])
    return markdown_table(header, lines)


def write_csv(table: Table, path: Path, first_header: str) -> None:
    header = [first_header, "seeds"]
    for beta, metric in table.columns:
        header += [f"{beta:g}/{metric}/mean", f"{beta:g}/{metric}/std"]
    header.append("seconds_per_run")
    with atomic_writer(path, newline="") as handle:
        out = csv.writer(handle)
        out.writerow(header)
        for row in table.rows:
            counts = [s.n for c in table.columns if (s := row.stat(c)) is not None]
            line = [row.label, min(counts) if counts else 0]
            for column in table.columns:
                stat = row.stat(column)
                line += ["", ""] if stat is None else [f"{stat.mean:.6f}", f"{stat.std:.6f}"]
            secs = [s for s in table.seconds.get(row.label, []) if s == s]
            line.append(f"{sum(secs) / len(secs):.1f}" if secs else "")
            out.writerow(line)
        if table.improvement is not None:
            line = [f"{OURS} relative improvement over best other (%)", ""]
            for column in table.columns:
                value = table.improvement.get(column)
                line += ["" if value is None else f"{value:.4f}", ""]
            out.writerow([*line, ""])


def averaged_members(run: dict) -> list[dict]:
    """The settings of the candidates a search with ``size_search_average`` kept, the chosen
    (best) first (one when no other improved the average); [] for a search without it."""
    members = [c for c in run.get("size_search") or [] if c.get("averaged")]
    return [c["settings"] for c in sorted(members, key=lambda c: not c.get("chosen"))]


def composed_by_row(by_row: dict[str, set], results: dict) -> dict[str, int]:
    """Row label -> how many of its finished cells were composed (rows with none left out)."""
    counts = {
        row: sum(bool((results.get(key, {}).get("run") or {}).get(COMPOSED_KEY)) for key in keys)
        for row, keys in by_row.items()
    }
    return {row: n for row, n in counts.items() if n}


def composed_candidates(run: dict) -> list[str]:
    """The candidates (``key=value;…``) that ``--compose-candidate`` composed into a cell, as
    far as its record tells (a line composed by other means names none)."""
    record = run.get(COMPOSED_KEY)
    if isinstance(record, str):  # read from a cells CSV: its column's text
        text = record.split(IMPORTED_SUFFIX)[0]
        return text[len(COMPOSED_WITH) :].split(" | ") if text.startswith(COMPOSED_WITH) else []
    if not isinstance(record, dict):
        return []
    found = []
    for step in record.get("runs", []):
        if "earlier" in step:
            found += composed_candidates({COMPOSED_KEY: step["earlier"]})
        if "candidate" in step:
            found.append(settings_text(step["candidate"]))
    return found


def composed_text(run: dict) -> str:
    """The cells CSV's ``composed`` column: empty, or ``composed``, followed by ``with`` and the
    candidates ``--compose-candidate`` composed in, so that composing again with one of them is
    seen on a fresh machine too."""
    if not run.get(COMPOSED_KEY):
        return ""
    candidates = composed_candidates(run)
    return COMPOSED_WITH + " | ".join(candidates) if candidates else COMPOSED


def line_key(row: str, beta: float, seed) -> tuple[str, str, str]:
    """How a cells CSV line is found: its row label, β and seed as the file writes them."""
    return row, f"{beta:g}", str(seed)


def read_cells_lines(path: Path) -> dict[tuple[str, str, str], dict]:
    """The lines of a committed ``<table>_cells.csv`` by ``line_key``; {} when there is none."""
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    first = next(iter(rows[0]))  # the row label's column: model, variant, T, ...
    return {(row[first], row["beta"], row["seed"]): row for row in rows}


def lines_outside_plan(entries, table: str, path: Path) -> list[dict]:
    """The lines of the committed cells CSV at ``path`` whose row, β and seed this invocation
    does not plan in ``table`` (a narrower ``--models``/``--betas``/``--seeds``, or a row its
    data cannot have, such as content vectors without ``features/``): rewriting the file keeps
    them, so a rebuild never drops cells it did not look at."""
    planned = {line_key(e.row, e.beta, e.seed) for e in entries if e.table == table}
    return [line for key, line in read_cells_lines(path).items() if key not in planned]


def write_cells_csv(
    task: Task, entries, results: dict, table: str, path: Path, first: str, kept=()
) -> int:
    """One line per finished run of ``table`` (row, β, seed): its validation and test metrics,
    best epoch and seconds, so that pairs of rows can be compared seed by seed; then the
    ``kept`` lines (``lines_outside_plan``) as they were. Returns the number of lines written."""
    header = [first, "beta", "seed"]
    header += [f"{part}/{metric}" for part in ("valid", "test") for metric in task.metrics]
    header += ["best_epoch", "stopped_by", COMPOSED, CHOSEN, AVERAGED, "seconds", SECONDS_COUNTED]
    lines = []
    for entry in entries:
        result = results.get(f"{task.name}/{entry.cell.key()}")
        if entry.table != table or result is None:
            continue
        line = [entry.row, f"{entry.beta:g}", entry.seed]
        for part in ("valid", "test"):
            values = result.get(part) or {}
            line += ["" if values.get(m) is None else f"{values[m]:.6f}" for m in task.metrics]
        run = result.get("run") or {}
        epoch = run.get("best_epoch")
        line += ["" if epoch is None else epoch, run.get("stopped_by") or ""]
        line.append(composed_text(run))
        line.append(settings_text(chosen_settings(run)))
        line.append(MEMBERS_JOIN.join(settings_text(m) for m in averaged_members(run)))
        line.append(f"{result.get('seconds', float('nan')):.1f}")
        line.append(LAST_TRY_ONLY if counts_last_try_only(result) else "")
        lines.append(line)
    lines += [[old.get(name) or "" for name in header] for old in kept]
    with atomic_writer(path, newline="") as handle:
        out = csv.writer(handle)
        out.writerow(header)
        out.writerows(lines)
    return len(lines)
