"""Side-by-side comparison of the MuSiC paper (Tables 2–3, Fig. 3): models × tasks × β × seeds.

Every cell (task, model, β, seed, overrides) is one run of ``run_recbole_music.py`` in a
subprocess (bench/_grid.py); its result JSON is cached under ``--work`` and never recomputed, so
an interrupted benchmark resumes and ``--report-only`` rebuilds the tables from the cache. All
models of a task share the split of a given β and seed. Per task, under ``--out/<task>/``:

* ``main.md`` / ``main.csv`` — Table 2: rows = models, columns = β × metrics (mean ± std over
  seeds, best per column in bold) and a last row with MuSiC's relative improvement over the best
  other model per column (positive = MuSiC better, for MAE/RMSE too);
* ``ablation.md`` / ``ablation.csv`` — Table 3: MuSiC, w/o MLLM, w/o diffusion, w/o side, and
  direct transfer (ours: w/o diffusion with ``u_A`` trained on target ratings);
* ``steps.md`` / ``steps.csv`` / ``steps.png`` — Fig. 3: MuSiC vs the diffusion steps T;
* ``activation.md`` / ``activation.csv`` — Fig. 4: MuSiC vs the projection MLPs' activation.

    python bench/compare.py                                  # everything (hours)
    python bench/compare.py --tasks movie_music_demo --models ItemMean,TargetMF,MuSiC \\
        --betas 0.2 --seeds 1 --epochs 3 --tables main --out bench/_work/compare_smoke
    python bench/compare.py --report-only                    # tables from the cached cells

A model that is not registered (neither a recbole-music model nor a RecBole built-in) is skipped
with a message; so is a task whose data is absent. ``food_kitchen`` (food → kitchen) and
``kitchen_food`` (kitchen → food) are built from ``../shared/data/food_kitchen`` on first use.
Any other ``--key=value`` argument is a RecBole override passed to every cell.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from _grid import (
    RESERVED,
    ROOT,
    Cell,
    CellFailed,
    Row,
    best_rows,
    data_kind,
    dataset_info,
    fmt_stat,
    load_cell,
    markdown_table,
    relative_improvement,
    run_cell,
    smaller_is_better,
)

FLOORS = ["GlobalMean", "ItemMean", "TargetMF", "Pop"]
BUILTINS = ["ItemKNN", "BPR", "NeuMF", "LightGCN"]
NEIGHBOURHOOD = ["ItemKNNTransfer", "UserKNNTransfer", "RidgeTransfer"]
CDR_BASELINES = ["CMF", "EMCDR", "SSCDR", "LACDR", "PTUPCDR", "DiffCDR"]
OURS = "MuSiC"
DEFAULT_MODELS = [*FLOORS, *BUILTINS, *NEIGHBOURHOOD, *CDR_BASELINES, OURS]
EXPLICIT_ONLY = {"GlobalMean"}  # predicts a rating, ranks nothing
DEFAULT_TASKS = ["movie_music_demo", "food_kitchen", "kitchen_food"]
TABLES = ["main", "ablation", "steps", "activation"]
DEFAULT_STEPS = [2, 5, 10, 20, 50]
ACTIVATIONS = ["tanh", "relu", "sigmoid", "softmax"]  # the paper's Fig. 4
METRICS = {
    "explicit": ["mae", "rmse", "ratedndcg@20", "ndcg@20", "recall@20"],
    "implicit": ["ndcg@20", "recall@20"],
}
KEY_METRIC = {"explicit": "rmse", "implicit": "ndcg@20"}
METRIC_NAMES = {
    "mae": "MAE",
    "rmse": "RMSE",
    "ratedndcg@20": "rated NDCG@20",
    "ndcg@20": "NDCG@20",
    "recall@20": "Recall@20",
    "hit@20": "Hit@20",
}
SHARED_DATA = ROOT.parent / "shared" / "data"
# MuSiC's multimodal features need the items table; user vectors come from the review tables
# (users_aux, users_target) when present, else from each user's history (user_vectors: auto).
FEATURE_TABLES = ("items",)
USER_REVIEW_TABLES = ("users_aux", "users_target")


@dataclass(frozen=True)
class RealSource:
    """A task built from one interactions file holding both domains (``--*-where`` splits it)."""

    folder: str  # under the shared data folder
    aux: str
    target: str
    interactions: str = "interactions.tsv"
    items: str = "items.tsv"


REAL_TASKS = {
    "food_kitchen": RealSource("food_kitchen", aux="food", target="kitchen"),
    "kitchen_food": RealSource("food_kitchen", aux="kitchen", target="food"),
}
DEMO_TASK = "movie_music_demo"


@dataclass
class Task:
    name: str  # = the dataset folder name
    folder: Path
    info: dict
    feedback: str
    metrics: list[str]
    has_features: bool
    has_review_vectors: bool = False
    notes: list[str] = field(default_factory=list)


def metric_label(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric) + (" ↓" if smaller_is_better(metric) else " ↑")


def beta_label(beta: float) -> str:
    return f"β={beta * 100:g}%"


# --- tasks -------------------------------------------------------------------------------------


def _run_prep(argv: list[str], cwd: Path) -> None:
    command = [sys.executable, "-m", "dataset_prep", *argv]
    print("  $ python -m dataset_prep " + shlex.join(argv), flush=True)
    done = subprocess.run(command, cwd=str(cwd), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError((done.stderr or done.stdout)[-3000:])


def build_real(name: str, source: RealSource, data_root: Path, shared: Path) -> None:
    raw = Path(os.path.relpath(shared / source.folder, ROOT))  # build.json records it as given
    inter, items = raw / source.interactions, raw / source.items
    _run_prep(
        [
            "build", "--name", name, "--out", str(data_root), "--no-progress",
            "--aux", str(inter), "--aux-meta", str(items), "--aux-where", f"domain={source.aux}",
            "--target", str(inter), "--target-meta", str(items),
            "--target-where", f"domain={source.target}",
        ],
        ROOT,
    )  # fmt: skip


def prepare_task(name: str, args) -> Task | None:
    """The task's dataset folder, built first when it is missing and its raw data is there;
    None (and a message saying why) when the task cannot run."""
    data_root = Path(args.cwd) / "dataset"
    folder = data_root / name
    if not (folder / f"{name}.inter").is_file():
        if args.report_only:
            print(f"skip task {name}: no dataset folder {folder} (--report-only builds nothing)")
            return None
        try:
            if name == DEMO_TASK:
                print(f"{name}: building the GENERATED demo dataset into {folder}", flush=True)
                _run_prep(["demo", "--out", str(data_root), "--no-progress"], ROOT)
            elif name in REAL_TASKS:
                source = REAL_TASKS[name]
                raw = Path(args.shared_data) / source.folder
                if not all((raw / f).is_file() for f in (source.interactions, source.items)):
                    print(
                        f"skip task {name}: its raw data is absent ({raw}/{source.interactions} "
                        f"and {source.items}); see ../shared/data/README.md"
                    )
                    return None
                print(f"{name}: building {source.aux} → {source.target} from {raw}", flush=True)
                build_real(name, source, data_root, Path(args.shared_data))
            else:
                print(
                    f"skip task {name}: no dataset folder {folder} "
                    f"(build it with `python -m dataset_prep build --name {name} ...`)"
                )
                return None
        except RuntimeError as error:
            print(f"skip task {name}: building its dataset failed:\n{error}")
            return None
    info = dataset_info(folder)
    feedback = info["feedback"] if info["feedback"] in METRICS else "explicit"
    metrics = args.metrics or METRICS[feedback]
    has_features = all((folder / "features" / f"{t}.json").is_file() for t in FEATURE_TABLES)
    has_reviews = all((folder / "features" / f"{t}.json").is_file() for t in USER_REVIEW_TABLES)
    return Task(name, folder, info, feedback, metrics, has_features, has_reviews)


# --- the plan: which cells each table needs ------------------------------------------------------


@dataclass
class Entry:
    table: str  # main | ablation | steps | activation
    row: str
    beta: float
    seed: int
    cell: Cell


def music_variants(task: Task, with_fused: bool = False) -> list[tuple[str, tuple[str, ...]]]:
    """The ablation rows (paper Table 3) as (label, overrides); the full model first;
    ``with_fused`` adds MuSiC on the fused feature source (multimodal + ID embeddings)."""
    if task.has_features:
        full = ("--feature_source=multimodal",)
        fused = [("fused features", ("--feature_source=fused",))] if with_fused else []
        return [
            ("MuSiC (full)", full),
            ("w/o MLLM", ("--feature_source=collaborative",)),
            *fused,
            *_without_diffusion(full),
            ("w/o side", (*full, "--use_side_users=False")),
        ]
    full = ("--feature_source=collaborative",)
    return [
        ("MuSiC (full, collaborative)", full),
        *_without_diffusion(full),
        ("w/o side", (*full, "--use_side_users=False")),
    ]


def _without_diffusion(full: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """The paper's w/o diffusion (``u_A`` stands in for ``u_T``, no mapping learnt) and ours,
    a stronger one: ``u_A`` trained on the overlapping users' target ratings."""
    off = (*full, "--use_diffusion=False")
    return [("w/o diffusion", off), ("direct transfer (ours)", (*off, "--direct_transfer=True"))]


def music_defaults() -> dict:
    """MuSiC's defaults (properties/model/MuSiC.yaml); empty when unreadable."""
    import yaml

    try:
        return yaml.safe_load((ROOT / "properties" / "model" / "MuSiC.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


# The sweeps (Fig. 3 and 4): table -> (MuSiC setting, the args attribute of its values, row label)
SWEEPS = {
    "steps": ("diffusion_steps", "steps", "T = {}"),
    "activation": ("activation", "activations", "{}"),
}


def sweep_rows(table: str, args, defaults: dict) -> list[tuple[str, tuple[str, ...]]]:
    """(row label, overrides) per value of a sweep; the default value adds no override, so it
    is the full model's own cell."""
    key, attribute, label = SWEEPS[table]
    return [
        (label.format(v), () if str(v) == str(defaults.get(key)) else (f"--{key}={v}",))
        for v in getattr(args, attribute)
    ]


def model_overrides(model: str, args) -> tuple[str, ...]:
    """Every cell's extra overrides: --epochs (MuSiC: both stages), the user's own, then the
    ones ``--model-arg`` gives this model alone."""
    extra: list[str] = []
    if args.epochs is not None:
        extra.append(f"--epochs={args.epochs}")
        if model == OURS:
            extra.append(f"--stage1_epochs={args.epochs}")
    own = tuple(f"--{kv}" for name, kv in args.model_args if name == model)
    return (*extra, *args.overrides, *own)


def plan(task: Task, models: list[str], args) -> list[Entry]:
    """Every table's entries, β by β and seed by seed (so a partial grid is a complete
    comparison of its first splits); a cell several tables need is one entry per table."""
    entries: list[Entry] = []
    variants = music_variants(task, args.with_fused)
    full = variants[0][1]
    music_extra = model_overrides(OURS, args)
    defaults = music_defaults()
    sweeps = {t: sweep_rows(t, args, defaults) for t in SWEEPS if t in args.tables}
    for beta in dict.fromkeys([*args.betas, *args.steps_betas]):
        for seed in args.seeds:
            if "main" in args.tables and beta in args.betas:
                for model in models:
                    own = full if model == OURS else ()
                    cell = Cell(task.name, model, beta, seed, (*own, *model_overrides(model, args)))
                    entries.append(Entry("main", model, beta, seed, cell))
            if "ablation" in args.tables and beta in args.betas:
                for label, overrides in variants:
                    cell = Cell(task.name, OURS, beta, seed, (*overrides, *music_extra))
                    entries.append(Entry("ablation", label, beta, seed, cell))
            if beta in args.steps_betas:
                for table, rows in sweeps.items():
                    for label, own in rows:
                        cell = Cell(task.name, OURS, beta, seed, (*full, *own, *music_extra))
                        entries.append(Entry(table, label, beta, seed, cell))
    return entries


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


def select_models(task: Task, args) -> list[str]:
    chosen = []
    for model in args.models:
        if model in EXPLICIT_ONLY and task.feedback != "explicit":
            print(
                f"{task.name}: skip {model} (predicts ratings only; this task is {task.feedback})"
            )
            task.notes.append(f"{model} skipped: it predicts ratings only, this data is implicit.")
            continue
        chosen.append(model)
    return chosen


# --- running ------------------------------------------------------------------------------------


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


# --- tables -------------------------------------------------------------------------------------


@dataclass
class Table:
    rows: list[Row]
    columns: list[tuple[float, str]]  # (β, metric)
    seconds: dict[str, list[float]]
    improvement: dict | None = None  # column -> percent (main table)


def collect(task: Task, entries: list[Entry], results: dict, table: str, betas) -> Table:
    rows: dict[str, Row] = {}
    seconds: dict[str, list[float]] = {}
    for entry in entries:
        if entry.table != table:
            continue
        row = rows.setdefault(entry.row, Row(entry.row))
        result = results.get(f"{task.name}/{entry.cell.key()}")
        if result is None:
            continue
        seconds.setdefault(entry.row, []).append(result.get("seconds", float("nan")))
        for metric in task.metrics:
            value = result.get("test", {}).get(metric)
            if value is not None:
                row.values.setdefault((entry.beta, metric), []).append(value)
    columns = [(beta, metric) for beta in betas for metric in task.metrics]
    kept = [row for row in rows.values() if row.values]
    # a metric no row has (MAE of ranking-only models on implicit data) is no column
    columns = [c for c in columns if any(r.stat(c) for r in kept)]
    return Table(kept, columns, seconds)


def add_improvement(table: Table) -> None:
    ours = next((r for r in table.rows if r.label == OURS), None)
    others = [r for r in table.rows if r.label != OURS]
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
        table.improvement[column] = relative_improvement(mine.mean, other.mean, column[1])


def seeds_note(row: Row, columns, n_seeds: int) -> str:
    counts = [s.n for c in columns if (s := row.stat(c)) is not None]
    low = min(counts) if counts else 0
    return "" if low >= n_seeds else f" ({low}/{n_seeds} seeds)"


def render_markdown(table: Table, first_header: str, n_seeds: int) -> str:
    best = best_rows(table.rows, table.columns, metric_of=lambda c: c[1])
    header = [first_header] + [f"{beta_label(b)} {metric_label(m)}" for b, m in table.columns]
    header.append("s/run")
    lines = []
    for row in table.rows:
        cells = [fmt_stat(row.stat(c), best.get(c) == row.label) for c in table.columns]
        secs = [s for s in table.seconds.get(row.label, []) if s == s]
        cells.append(f"{sum(secs) / len(secs):.0f}" if secs else "n/a")
        lines.append([row.label + seeds_note(row, table.columns, n_seeds), *cells])
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
    with open(path, "w", newline="") as handle:
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


def plot_steps(task: Task, table: Table, betas, steps, path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no steps figure (pip install matplotlib)")
        return False
    metrics = [m for m in task.metrics if any(c[1] == m for c in table.columns)]
    if not metrics:
        return False
    by_label = {row.label: row for row in table.rows}
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(3.4 * len(metrics) + 0.6, 3.3), squeeze=False
    )
    for ax, metric in zip(axes[0], metrics):
        for beta in betas:
            xs, ys, errs = [], [], []
            for t in steps:
                row = by_label.get(f"T = {t}")
                stat = row.stat((beta, metric)) if row else None
                if stat is not None:
                    xs.append(t)
                    ys.append(stat.mean)
                    errs.append(stat.std)
            if xs:
                ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=beta_label(beta))
        ax.set_xscale("log")
        ax.set_xticks(list(steps))
        ax.set_xticklabels([str(t) for t in steps])
        ax.minorticks_off()
        ax.set_xlabel("diffusion steps T")
        ax.set_title(metric_label(metric))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


TITLES = {
    "main": "Cold-start comparison (paper Table 2)",
    "ablation": "MuSiC ablations (paper Table 3)",
    "steps": "MuSiC vs diffusion steps T (paper Fig. 3)",
    "activation": "MuSiC vs activation (paper Fig. 4)",
}


def header_block(task: Task, table: str, args, results: list[dict], wall: float, notes) -> str:
    info = task.info
    direction = f"{info.get('aux') or 'aux'} → {info.get('target') or 'target'}"
    sources = info.get("sources") or []
    source = f" Built from {', '.join(f'`{s}`' for s in sources)}." if sources else ""
    selection = sorted({r.get("run", {}).get("model_selection", "?") for r in results})
    compute = sum(r.get("seconds", 0.0) for r in results)
    command = shlex.join(
        ["python", "bench/compare.py", *[a for a in args.argv if a != "--report-only"]]
    )
    rebuilt = (
        f"\nTables rebuilt from the cached cells by `{shlex.join(['python', 'bench/compare.py', *args.argv])}`."
        if args.report_only
        else ""
    )
    feature_line = ""
    if table in TABLES:
        feature_line = (
            f"\nMuSiC's features: multimodal tables in `dataset/{task.name}/features/`; user "
            + (
                "vectors from the review tables and the users' histories (`user_vectors: both`)."
                if task.has_review_vectors
                else "vectors from the users' histories (no review tables: `user_vectors: history`)."
            )
            if task.has_features
            else f"\nMuSiC's features: **collaborative** (learned ID embeddings) — "
            f"`dataset/{task.name}/features/` has no feature tables, so full MuSiC here is the "
            f"paper's 'w/o MLLM' and that ablation row is left out."
        )
    note_lines = "".join(f"\n- {n}" for n in notes)
    notes_block = f"\n**Notes:**{note_lines}\n" if notes else ""
    return f"""# {TITLES[table]}: {task.name}

**Data:** `dataset/{task.name}` ({direction}, {task.feedback} feedback) — {data_kind(info)}.{source}

Test metrics on the cold-start users (a share β of the overlapping users, docs/protocol.md), mean ±
std over seeds {args.seeds}: a seed is one split and one model initialisation, and every row
shares the split of a given β and seed. Model selection: {"; ".join(selection) or "n/a"}.
Best mean per column in **bold**; ↓ lower is better, ↑ higher is better. MAE/RMSE pooled over
held-out ratings; rated NDCG@20 = the MuSiC paper's NDCG over each user's own rated items;
NDCG@20/Recall@20 = full ranking over all target items.{feature_line}

**Command:** `{command}`{rebuilt}
**Wall time:** {wall:.0f} s for this invocation; the runs in this table took {compute:.0f} s of
compute in all (sum of per-run times, cached runs included).
{notes_block}"""


def write_reports(task: Task, entries, results, failures, args, wall: float) -> list[Path]:
    out = Path(args.out) / task.name
    out.mkdir(parents=True, exist_ok=True)
    written = []
    n_seeds = len(args.seeds)
    for name in args.tables:
        betas = args.steps_betas if name in SWEEPS else args.betas
        first = {"main": "model", "ablation": "variant", "steps": "T", "activation": "activation"}[
            name
        ]
        table = collect(task, entries, results, name, betas)
        used = [
            results[k]
            for k in dict.fromkeys(
                f"{task.name}/{e.cell.key()}" for e in entries if e.table == name
            )
            if k in results
        ]
        notes = list(task.notes) if name == "main" else []
        notes += [f"{m} alone: `--{kv}`" for m, kv in args.model_args]
        planned = {f"{task.name}/{e.cell.key()}" for e in entries if e.table == name}
        missing = len(planned - set(results))
        if missing:
            notes.append(
                f"{missing} of {len(planned)} runs not finished (failed, skipped or not run yet)."
            )
        notes += [f"failed: `{failures[k]}`" for k in sorted(planned & set(failures))]
        if name == "main":
            add_improvement(table)
            if table.improvement is not None:
                notes.append(
                    f"Last row: {OURS}'s relative improvement over the best other model of each "
                    "column, positive = MuSiC better: (other − MuSiC)/other for MAE/RMSE, "
                    "(MuSiC − other)/other for the rest."
                )
        if name == "ablation":
            spec = {label: o for label, o in music_variants(task, args.with_fused)}
            notes += [f"{label}: `{' '.join(o)}`" for label, o in spec.items()]
        body = render_markdown(table, first, n_seeds) if table.rows else "_No finished runs._"
        text = header_block(task, name, args, used, wall, notes) + "\n" + body + "\n"
        if name == "steps" and table.rows:
            png = out / "steps.png"
            kind = "GENERATED data" if task.info.get("generated") else "real data"
            if task.info.get("generated") is None:
                kind = "provenance unknown"
            if plot_steps(
                task,
                table,
                betas,
                args.steps,
                png,
                f"{TITLES['steps']} — {task.name} ({kind}); error bars: std over seeds",
            ):
                text += "\n![MuSiC vs diffusion steps T](steps.png)\n"
                written.append(png)
        (out / f"{name}.md").write_text(text)
        write_csv(table, out / f"{name}.csv", first)
        written += [out / f"{name}.md", out / f"{name}.csv"]
    return written


# --- command line -------------------------------------------------------------------------------


def _split_list(values, kind=str) -> list:
    out = []
    for value in values or []:
        out += [kind(v.strip()) for v in str(value).split(",") if v.strip()]
    return out


def parse_args(argv: list[str]):
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
        help="which of main, ablation, steps, activation (default: all)",
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
    args.activations = _split_list(args.activations)
    args.metrics = _split_list(args.metrics) or None
    args.tables = _split_list(args.tables)
    unknown = [t for t in args.tables if t not in TABLES]
    if unknown:
        parser.error(f"--tables: unknown {unknown}; choose from {TABLES}")
    if any(not 0 < b < 1 for b in args.betas + args.steps_betas):
        parser.error("β values must lie strictly between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    started = time.perf_counter()
    planned: list[tuple[Task, list[Entry]]] = []
    for name in args.tasks:
        task = prepare_task(name, args)
        if task is None:
            continue
        models = select_models(task, args)
        if "main" in args.tables and not models:
            print(f"{name}: no runnable model for the main table")
        planned.append((task, plan(task, models, args)))
    if not planned:
        print("nothing to do: no task could run")
        return 1
    results, failures = run_all(planned, args)
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


if __name__ == "__main__":
    raise SystemExit(main())
