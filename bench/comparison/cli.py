"""Side-by-side comparison of the MuSiC paper (Tables 2–3, Figs. 3–4): models × tasks × β × seeds.

Every cell (task, model, β, seed, overrides) is one run of ``run_recbole_music.py`` in a
subprocess (bench/_grid.py); its result JSON is cached under ``--work`` and never recomputed, so
an interrupted benchmark resumes and ``--report-only`` rebuilds the tables from the cache. All
models of a task share the split of a given β and seed. Per task, under ``--out/<task>/``, each
table as Markdown, CSV and a PNG figure (the key metric per row, error bars = std over seeds):

* ``main.{md,csv,png}`` — Table 2: rows = models, columns = β × metrics (mean ± std over
  seeds, best per column in bold) and a last row with MuSiC's relative improvement over the best
  other model per column (positive = MuSiC better, for MAE/RMSE too);
* ``ablation.{md,csv,png}`` — Table 3: MuSiC, w/o MLLM, w/o diffusion, w/o side, and
  direct transfer (ours: w/o diffusion with ``u_A`` trained on target ratings);
* ``steps.{md,csv,png}`` — Fig. 3: MuSiC vs the diffusion steps T;
* ``activation.{md,csv,png}`` — Fig. 4: MuSiC vs the projection MLPs' activation.

    python bench/compare.py                                  # everything (hours)
    python bench/compare.py --tasks movie_music_demo --models ItemMean,TargetMF,MuSiC \\
        --betas 0.2 --seeds 1 --epochs 3 --tables main --out bench/_work/compare_smoke
    python bench/compare.py --report-only                    # tables from the cached cells
    python bench/compare.py --figures-from-csv               # figures from the tables' CSVs
    python bench/compare.py --cells-from-csv --models ...    # committed cells + the new ones
    python bench/compare.py --cells-from-csv --compose-candidate 'interaction_vector_dim=128;...'
                                                             # MuSiC's search gains a candidate

A model that is not registered (neither a recbole-music model nor a RecBole built-in) is skipped
with a message; so is a task whose data is absent. ``food_kitchen`` (food → kitchen) and
``kitchen_food`` (kitchen → food) are built from ``../shared/data/food_kitchen`` on first use.
Any other ``--key=value`` argument is a RecBole override passed to every cell.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _grid import (
    RESERVED,
    ROOT,
    load_cell,
    write_json,
)

from .catalogue import (
    ACTIVATIONS,
    COLD_ITEM_RATIO,
    DEFAULT_MODELS,
    DEFAULT_STEPS,
    DEFAULT_TASKS,
    DUAL_BETAS,
    TABLES,
)
from .compose import (
    AVERAGED_REFUSAL,
    candidate_cell,
    candidate_entries,
    compose,
    has_met,
    parse_candidate,
    searched_an_average,
    selection_metric,
)
from .figures import figures_from_csv
from .imported import import_cells
from .plan import Entry, names_variant, plan, searches_sizes, variant_labels
from .report import write_reports
from .run import run_all
from .tasks import SHARED_DATA, Task, prepare_task, select_models


def _split_list(values, kind=str) -> list:
    out = []
    for value in values or []:
        out += [kind(v.strip()) for v in str(value).split(",") if v.strip()]
    return out


def build_parser() -> argparse.ArgumentParser:
    """The flags (docs/compare.md's table); any other ``--key=value`` is a RecBole override."""
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=DEFAULT_TASKS,
        help=f"dataset names (default: {' '.join(DEFAULT_TASKS)}); any built "
        "dataset folder works; comma- or space-separated",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=DEFAULT_MODELS,
        help="model names (default: floors, RecBole built-ins, CDR baselines, "
        "MuSiC); comma- or space-separated",
    )
    parser.add_argument(
        "--betas",
        nargs="+",
        default=["0.2", "0.5", "0.8"],
        help="cold-start shares β (default: 0.2 0.5 0.8)",
    )
    parser.add_argument(
        "--seeds", nargs="+", default=["1", "2", "3"], help="seeds (default: 1 2 3)"
    )
    parser.add_argument(
        "--tables",
        nargs="+",
        default=TABLES,
        help="which of main, ablation, steps, activation, dual (default: all)",
    )
    parser.add_argument(
        "--dual-betas",
        nargs="+",
        default=[str(b) for b in DUAL_BETAS],
        help="β values of the dual cold-start table (default: 0.5, the paper's Table 4)",
    )
    parser.add_argument(
        "--cold-item-ratio",
        type=float,
        default=COLD_ITEM_RATIO,
        help="dual cold-start table: share of target items unseen in training "
        f"(--cold_item_ratio; default {COLD_ITEM_RATIO})",
    )
    parser.add_argument(
        "--paper-row",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the main and dual tables' row 'MuSiC (paper)': MuSiC with every addition of ours "
        "switched off (properties/model/MuSiC-paper.yaml; default on)",
    )
    parser.add_argument(
        "--best-candidate-row",
        action="store_true",
        help="the main and dual tables' row 'MuSiC (best candidate)': MuSiC's size search "
        "keeping its best candidate alone (--size_search_average=False) beside the default, "
        "which averages the candidates; a second search per cell",
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        default=[str(t) for t in DEFAULT_STEPS],
        help="diffusion steps T of the steps sweep (default: 2 5 10 20 50)",
    )
    parser.add_argument(
        "--steps-betas",
        nargs="+",
        default=None,
        help="β values of the steps and activation sweeps (default: --betas)",
    )
    parser.add_argument(
        "--activations",
        nargs="+",
        default=list(ACTIVATIONS),
        help="activations of the activation sweep (default: tanh relu sigmoid softmax)",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        help="metric keys (default: explicit mae rmse ratedndcg@20 ndcg@20 "
        "recall@20; implicit ndcg@20 recall@20)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="cap training epochs for quick runs (MuSiC: both stages)",
    )
    parser.add_argument(
        "--with-fused",
        action="store_true",
        help="add MuSiC on fused features (multimodal + ID embeddings) to the ablation table",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="ablation table: run the full model and only the rows whose label contains one of "
        "these (case-insensitive), e.g. --variants 'w/o side' 'direct'; default: every row",
    )
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="MODEL:KEY=VALUE",
        help="a RecBole override for one model only (repeatable), e.g. "
        "MuSiC:learning_rate=0.01; the tables' notes list them",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="cells run at once, each in its own process (default: 1); with N > 1 pass "
        "--torch_threads=1 so N runs share the cores instead of thrashing",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild the tables from the cached cells; run and build nothing",
    )
    parser.add_argument(
        "--cells-from-csv",
        action="store_true",
        help="take a planned cell that is not cached from the committed <out>/<task>/<table>_cells.csv "
        "line of its row, beta and seed (an earlier invocation of the same command), then run the "
        "rest",
    )
    parser.add_argument(
        "--compose-candidate",
        default=None,
        metavar="KEY=VALUE;...",
        help="one more size-search candidate for MuSiC's searching cells, e.g. "
        "'interaction_vector_dim=128;embedding_size=64': each cell is set beside the "
        "candidate's own run and keeps the better on the validation users "
        "(bench/comparison/compose.py), before the tables are built",
    )
    parser.add_argument(
        "--figures-from-csv",
        action="store_true",
        help="draw the figures of the tables already under --out/<task>/ from their CSVs' mean "
        "and std columns (when the cached cells are gone); run and tabulate nothing",
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / "bench" / "results" / "compare"),
        help="report folder (default: bench/results/compare)",
    )
    parser.add_argument(
        "--work",
        default=str(ROOT / "bench" / "_work" / "compare"),
        help="cell cache (default: bench/_work/compare)",
    )
    parser.add_argument(
        "--cwd",
        default=str(ROOT),
        help="working directory of the runs, holding dataset/ (default: repo)",
    )
    parser.add_argument(
        "--shared-data",
        default=str(SHARED_DATA),
        help="real raw data folder (default: ../shared/data)",
    )
    return parser


def parse_args(argv: list[str]):
    """The flags, lists split on commas and typed, overrides and ``--model-arg`` checked."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    bad = [a for a in rest if not (a.startswith("--") and "=" in a)]
    if bad:
        parser.error(f"unrecognised arguments {bad}; RecBole overrides take the form --key=value")
    clash = [a for a in rest if a[2:].split("=")[0] in RESERVED]
    if clash:
        parser.error(f"{clash}: the grid sets these itself (use --tasks/--models/--betas/--seeds)")
    args.overrides = tuple(rest)
    args.model_args = []
    from recbole_music.settings import parse_model_arg  # the main command's own parsing

    for spec in args.model_arg:
        try:
            name, key, value = parse_model_arg(spec)
        except ValueError:
            key = None
        if key is None or key in RESERVED:
            parser.error(f"--model-arg {spec!r}: expected MODEL:KEY=VALUE (not {sorted(RESERVED)})")
        args.model_args.append((name, f"{key}={value}"))
    args.argv = list(argv)
    args.tasks = _split_list(args.tasks)
    args.models = _split_list(args.models)
    args.betas = _split_list(args.betas, float)
    args.seeds = _split_list(args.seeds, int)
    args.steps = _split_list(args.steps, int)
    args.steps_betas = _split_list(args.steps_betas, float) if args.steps_betas else args.betas
    args.dual_betas = _split_list(args.dual_betas, float)
    if not 0 < args.cold_item_ratio < 1:
        parser.error("--cold-item-ratio must lie strictly between 0 and 1")
    args.activations = _split_list(args.activations)
    args.metrics = _split_list(args.metrics) or None
    args.tables = _split_list(args.tables)
    if args.compose_candidate is not None:
        try:
            parse_candidate(args.compose_candidate)
        except ValueError as error:
            parser.error(str(error))
    labels = variant_labels(with_fused=True)
    unmatched = [w for w in args.variants or [] if not any(names_variant(w, x) for x in labels)]
    if unmatched:
        parser.error(f"--variants: {unmatched} match no ablation row; the rows: {labels}")
    unknown = [t for t in args.tables if t not in TABLES]
    if unknown:
        parser.error(f"--tables: unknown {unknown}; choose from {TABLES}")
    if any(not 0 < b < 1 for b in args.betas + args.steps_betas + args.dual_betas):
        parser.error("β values must lie strictly between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.figures_from_csv:
        return redraw_figures(args)
    started = time.perf_counter()
    tasks = prepare_tasks(args)
    if not tasks:
        print("nothing to do: no task could run")
        return 1
    composing_failures = compose_candidate(tasks, args) if args.compose_candidate else {}
    planned, waiting = plan_tasks(tasks, args)
    results, failures = run_all(planned, args)
    failures.update(composing_failures)
    if waiting:  # the full model's cells have run: plan its variants again, run the new ones
        done = {cell_id(task, entry) for task, entries in planned for entry in entries}
        planned, waiting = plan_tasks(tasks, args, quiet=True)
        new = [(t, [e for e in es if cell_id(t, e) not in done]) for t, es in planned]
        more, more_failures = run_all(new, args)
        results.update(more)
        failures.update(more_failures)
    for task, _ in planned:
        if n := waiting.get(task.name):
            print(f"{task.name}: {n} variant cell(s) wait for the full model's cell (not run yet)")
    wall = time.perf_counter() - started
    for task, entries in planned:
        for path in write_reports(task, entries, results, failures, args, wall):
            print(f"wrote {path}")
    if failures:
        print(f"{len(failures)} run(s) failed (not cached; rerun to retry):")
        for ident, failure in failures.items():
            print(f"  {ident.split('/')[0]}: {failure}")
        return 1
    return 0


def prepare_tasks(args) -> list[tuple[Task, list[str]]]:
    """Each task whose data is there (built on first use), with the models it runs."""
    tasks = []
    for name in args.tasks:
        task = prepare_task(name, args)
        if task is None:
            continue
        models = select_models(task, args)
        if "main" in args.tables and not models:
            print(f"{name}: no runnable model for the main table")
        tasks.append((task, models))
    return tasks


def cell_id(task: Task, entry: Entry) -> str:
    return f"{task.name}/{entry.cell.key()}"


def plan_tasks(tasks, args, quiet: bool = False) -> tuple[list[tuple[Task, list[Entry]]], dict]:
    """Each task's entries, and per task the number of variant cells that wait for the full
    model's cell (they train at the sizes it chose; see ``plan``)."""
    planned: list[tuple[Task, list[Entry]]] = []
    waiting: dict[str, int] = {}
    for task, models in tasks:
        work = Path(args.work) / task.name

        def cached(cell, work=work):
            return load_cell(work / cell.filename())

        entries, waits = plan(task, models, args, result_of=cached)
        if args.cells_from_csv:
            n = import_cells(task, entries, Path(args.out), Path(args.work))
            if waits and n:  # a full model's cell from the CSV: plan its variants again
                entries, waits = plan(task, models, args, result_of=cached)
                n += import_cells(task, entries, Path(args.out), Path(args.work))
            if not quiet:
                print(f"{task.name}: {n} cell(s) taken from the committed *_cells.csv files")
        planned.append((task, entries))
        if waits:
            waiting[task.name] = waits
    return planned, waiting


def compose_candidate(tasks, args) -> dict[str, str]:
    """``--compose-candidate``: plan the tables (reading the committed cells where asked),
    run every searching MuSiC cell that is not there and its candidate's own run, and write
    the composed result into each searching cell's cache file. Returns the failed runs."""
    settings = parse_candidate(args.compose_candidate)
    planned, _ = plan_tasks(tasks, args, quiet=True)
    searching = [
        (task, list({e.cell.key(): e for e in entries if searches_sizes(e.cell)}.values()))
        for task, entries in planned
    ]
    results, failures = run_all(searching, args)
    to_compose = []  # (task, entry, its result) of the cells the candidate joins
    for task, entries in searching:
        for entry in entries:
            base = results.get(f"{task.name}/{entry.cell.key()}")
            if base is None or has_met(base, settings):
                continue
            if not (base.get("run") or {}).get("size_search"):  # the search would not train it
                print(
                    f"{_compose_head(task, entry)}: not composed: its run searched no sizes "
                    "(content vectors, no validation users or a --nproc group)",
                    flush=True,
                )
                continue
            if searched_an_average(base):  # refused before its candidate is trained
                print(f"{_compose_head(task, entry)}: not composed: {AVERAGED_REFUSAL}", flush=True)
                continue
            to_compose.append((task, entry, base))
    jobs = [
        (task, candidate_entries([e for t, e, _ in to_compose if t is task], settings))
        for task, _ in searching
    ]
    candidates, more_failures = run_all(jobs, args)
    failures.update(more_failures)
    for task, entry, base in to_compose:
        candidate = candidates.get(f"{task.name}/{candidate_cell(entry.cell, settings).key()}")
        if candidate is None:  # failed, or not run (--report-only)
            continue
        head = _compose_head(task, entry)
        try:
            composed = compose(task, base, candidate, entry.cell, settings)
        except ValueError as error:  # e.g. no validation users: nothing to choose on
            print(f"{head}: not composed: {error}", flush=True)
            continue
        write_json(composed, Path(args.work) / task.name / entry.cell.filename())
        metric = selection_metric(task, base)
        won = composed["run"]["size_search"][-1]["chosen"]
        print(
            f"{head}: candidate validation {metric} {candidate['valid'][metric]:.4f} against "
            f"{base['valid'][metric]:.4f}: {'chosen' if won else 'earlier choice kept'}",
            flush=True,
        )
    return failures


def _compose_head(task: Task, entry: Entry) -> str:
    return f"compose {task.name} · {entry.row} · β={entry.beta:g} seed={entry.seed}"


def redraw_figures(args) -> int:
    """``--figures-from-csv``: each task's figures from its committed CSVs."""
    written = []
    for name in args.tasks:
        folder = Path(args.out) / name
        if not folder.is_dir():
            print(f"skip task {name}: no report folder {folder}")
            continue
        written += figures_from_csv(folder)
    for path in written:
        print(f"wrote {path}")
    return 0 if written else 1
