"""Running the plan: every distinct cell once (or read from the cache), a few at a time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from _grid import (
    CellFailed,
    load_cell,
    log_path,
    run_cell,
)

from .catalogue import KEY_METRIC, beta_label
from .plan import Entry
from .tasks import Task

_AVAILABLE: dict[str, str | None] = {}


def unavailable_reason(model: str) -> str | None:
    """None when ``model`` resolves to a recbole-music or RecBole model, else why not."""
    if model not in _AVAILABLE:
        import recbole_music  # noqa: F401  (registers the plugin's models)
        from recbole_music.quick_start import resolve_model

        try:
            resolve_model(model)
            _AVAILABLE[model] = None
        except ValueError as error:
            _AVAILABLE[model] = str(error).split(":")[0]
    return _AVAILABLE[model]


def run_all(tasks: list[tuple[Task, list[Entry]]], args) -> tuple[dict, list[str]]:
    """Run (or read from the cache) every distinct cell once, ``args.jobs`` at a time; a
    progress line per cell as it finishes."""
    cells: dict[str, tuple[Task, Entry]] = {}
    for task, entries in tasks:
        for entry in entries:
            cells.setdefault(f"{task.name}/{entry.cell.key()}", (task, entry))
    results: dict[str, dict] = {}
    failures: dict[str, str] = {}  # "<task>/<cell key>" -> the cell
    skipped: set[tuple[str, str]] = set()
    total = len(cells)
    to_run = []
    for k, (ident, (task, entry)) in enumerate(cells.items(), 1):
        cell = entry.cell
        path = Path(args.work) / task.name / cell.filename()
        head = f"[{k}/{total}] {task.name} · {entry.row} · {beta_label(cell.beta)} seed={cell.seed}"
        cached = load_cell(path)
        if cached is not None:
            results[ident] = cached
            print(f"{head}: cached, {key_metric_text(task, cached)}", flush=True)
            continue
        if args.report_only:
            print(f"{head}: not run yet", flush=True)
            continue
        # checked only for a cell that must run: a cached grid needs no model import
        if reason := unavailable_reason(cell.model):
            if (task.name, cell.model) not in skipped:
                skipped.add((task.name, cell.model))
                print(f"{head}: skip {cell.model}, not registered ({reason})", flush=True)
                task.notes.append(f"{cell.model}: not registered in this checkout, not run.")
            continue
        to_run.append((ident, task, cell, path, head))

    def run_one(job):
        ident, task, cell, path, head = job
        started = time.perf_counter()
        # a cell may train for an hour: say when it starts and where its epochs show
        print(
            f"{head}: started {time.strftime('%H:%M:%S')}, output in {log_path(path)}", flush=True
        )
        try:
            return job, run_cell(cell, path, cwd=args.cwd), None, started
        except CellFailed as error:
            return job, None, error, started

    # Each cell is its own subprocess, so threads suffice to run several at once; with one
    # worker the cells finish in plan order.
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, job) for job in to_run]
        for future in as_completed(futures):
            job, result, error, started = future.result()
            ident, task, cell, _, head = job
            if error is not None:
                seconds = time.perf_counter() - started
                failures[ident] = cell.describe()
                print(f"{head}: FAILED after {seconds:.0f} s\n{error}", flush=True)
                continue
            results[ident] = result
            seconds = result.get("seconds", time.perf_counter() - started)
            print(f"{head}: {seconds:.1f} s, {key_metric_text(task, result)}", flush=True)
    return results, failures


def key_metric_text(task: Task, result: dict) -> str:
    test = result.get("test", {})
    for metric in (KEY_METRIC[task.feedback], *task.metrics):
        if metric in test:
            return f"{metric}={test[metric]:.4f}"
    return "no metric"
