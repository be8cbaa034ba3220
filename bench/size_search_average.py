"""MuSiC's size search as it is (the best candidate) and with ``size_search_average``, side by side.

Both are made from the same candidate runs: each cell (task, β, seed) trains MuSiC once per
candidate of its size search (the run's own settings and each ``interaction_size_search`` entry
of properties/model/MuSiC.yaml that applies, as ``MuSiC.size_candidates`` lists them) as a run of
its own with ``--interaction_size_search=[]`` — equal to that candidate inside a search
(tests/test_size_search.py) — and keeps its checkpoint. Then, in this process:

* **best candidate**: the plain search's choice, the best validation score (a tie keeps the
  earlier candidate); its test result is its run's;
* **average**: ``recbole_music.size_search.select_average`` (what a run with
  ``size_search_average: True`` does) on the same reloaded candidates and validation users, then
  the selected average on the test users.

Every choice is made on the validation users; the test users only score what was chosen. A
reloaded candidate must score its run's validation result again (checked, to 4 decimals).

    python bench/size_search_average.py --tasks food_kitchen kitchen_food --betas 0.2 \\
        --seeds 1 2 3 --jobs 2 --torch_threads=1

Tasks: ``food_kitchen`` / ``kitchen_food`` (real, implicit; built from ../shared/data when
absent, skipped when that is absent too) and ``ratings_only_demo`` (the GENERATED demo read as
ratings alone: interaction vectors, history user vectors). Candidate runs are cached in
``--work`` (an interrupted bench resumes); the result is ``bench/results/size_search_average.md``
with its per-seed cells in ``size_search_average_cells.csv``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import SimpleNamespace

from _grid import Cell, Stat, fmt_stat, run_cell, summarise
from _paths import ROOT
from comparison.plan import fixed_size_overrides
from comparison.tasks import SHARED_DATA, prepare_task

from dataset_prep.layout import DEMO_DATASET

MODEL = "MuSiC"
TASKS = {  # name: (dataset folder, overrides of every run)
    "food_kitchen": ("food_kitchen", ()),
    "kitchen_food": ("kitchen_food", ()),
    "ratings_only_demo": (
        DEMO_DATASET,
        ("--feature_source=interactions", "--user_vectors=history"),
    ),
}
RESULTS = ROOT / "bench" / "results"


@dataclass
class Outcome:
    """One cell's two answers: the best candidate and the selected average."""

    task: str
    beta: float
    seed: int
    metrics: list[str]
    best: dict  # "valid"/"test": {metric: value}, "label"
    average: dict  # the same, and "members": labels, best first


def config_of(dataset: str, overrides: tuple[str, ...], beta: float, seed: int):
    """RecBole's Config of the cell's run (the split and evaluation every candidate shares)."""
    from recbole.config import Config

    import recbole_music
    from recbole_music.settings import parse_value, split_setting

    settings = dict(split_setting(o.removeprefix("--")) for o in overrides)
    return Config(
        model=MODEL,
        dataset=dataset,
        config_file_list=recbole_music.config_files(MODEL, dataset),
        config_dict={
            **{key: parse_value(text) for key, text in settings.items()},
            "state": "ERROR",
            "show_progress": False,
            "cold_ratio": beta,
            "seed": seed,
        },
    )


def candidates_of(dataset: str, overrides: tuple[str, ...], beta: float, seed: int) -> list[dict]:
    """The settings of every candidate a search of this run trains, the run's own first."""
    from recbole_music.model.music.model import MuSiC
    from recbole_music.quick_start import build_run
    from recbole_music.size_search import candidate_settings

    config = config_of(dataset, overrides, beta, seed)
    _, valid_set, _, model, _ = build_run(config, MuSiC)
    others = candidate_settings(model, config, valid_set)
    keys = sorted({key for candidate in others for key in candidate})
    own = {key: config[key] for key in keys}
    return [own, *[{key: c.get(key, own[key]) for key in keys} for c in others]]


def label_of(settings: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())


def compose(task, dataset, overrides, beta, seed, runs: list[tuple[dict, dict]]) -> Outcome:
    """The best candidate and the selected average of one cell's candidate runs."""
    import logging

    from recbole.utils import calculate_valid_score

    from recbole_music.checkpoint import config_from_checkpoint, read_checkpoint
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator
    from recbole_music.inference import rebuilt_model
    from recbole_music.model.music.model import MuSiC
    from recbole_music.model.score_average import ScoreAverage
    from recbole_music.quick_start import build_run
    from recbole_music.size_search import TrainedCandidate, select_average

    config = config_of(dataset, overrides, beta, seed)
    train_data, valid_set, test_set, _, _ = build_run(config, MuSiC)
    evaluator = ColdStartEvaluator(config)
    metric, bigger = config["valid_metric"].lower(), config["valid_metric_bigger"]
    trained = []
    for settings, result in runs:
        path = result["run"]["checkpoint"]
        checkpoint = read_checkpoint(path)
        member_config = config_from_checkpoint(checkpoint, MuSiC)
        model = rebuilt_model(MuSiC, member_config, train_data._dataset, checkpoint, path).eval()
        again = evaluator.evaluate(model, valid_set)
        if abs(again[metric] - result["valid"][metric]) > 1e-4:
            raise RuntimeError(
                f"{task} β={beta} seed={seed} {label_of(settings)}: the reloaded checkpoint "
                f"scores {metric} {again[metric]} on the validation users, its run {result['valid'][metric]}"
            )
        trained.append(TrainedCandidate(model, None, result["valid"][metric], again, settings))
    best = trained[0]  # the plain search's choice: a tie keeps the earlier candidate
    for candidate in trained[1:]:
        gain = candidate.valid_score - best.valid_score
        if gain > 0 if bigger else gain < 0:
            best = candidate
    best_result = runs[[c is best for c in trained].index(True)][1]

    def average(members):
        model = ScoreAverage([m.model for m in members], train_data._dataset.target_item_mask)
        result = evaluator.evaluate(model, valid_set)
        return calculate_valid_score(result, metric), result

    members, _, valid = select_average(trained, best, average, config, logging.getLogger())
    model = ScoreAverage([m.model for m in members], train_data._dataset.target_item_mask)
    test = evaluator.evaluate(model, test_set)
    metrics = [m for m in ("ndcg@20", "recall@20", "rmse", "mae") if m in test]
    return Outcome(
        task,
        beta,
        seed,
        metrics,
        {
            "label": label_of(best.settings),
            "valid": best_result["valid"],
            "test": best_result["test"],
        },
        {
            "label": f"{len(members)} of {len(trained)}",
            "members": [label_of(m.settings) for m in members],
            "valid": dict(valid),
            "test": dict(test),
        },
    )


def write_cells(outcomes: list[Outcome], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "beta", "seed", "row", "metric", "valid", "test", "members"])
        for o in outcomes:
            for row, part in (("best candidate", o.best), ("average", o.average)):
                for metric in o.metrics:
                    writer.writerow(
                        [
                            o.task,
                            o.beta,
                            o.seed,
                            row,
                            metric,
                            f"{part['valid'][metric]:.4f}",
                            f"{part['test'][metric]:.4f}",
                            "; ".join(part.get("members", [part["label"]])),
                        ]
                    )


def report(outcomes: list[Outcome], command: str, seconds: float) -> str:
    lines = [
        "# MuSiC's size search: the best candidate, or the average `size_search_average` selects",
        "",
        f"Command: `{command}` ({seconds / 60:.0f} min of this run; cached candidate runs are "
        f"not retrained). Date: {date.today().isoformat()}.",
        "",
        "Both rows come from the same candidate runs of each split (bench/size_search_average.py's "
        "docstring); every choice is made on the validation users, and the test users score only "
        "what was chosen. Mean ± std over the seeds; per-seed cells in "
        "`size_search_average_cells.csv`.",
    ]
    by_task: dict[tuple[str, float], list[Outcome]] = {}
    for o in outcomes:
        by_task.setdefault((o.task, o.beta), []).append(o)
    for (task, beta), cells in by_task.items():
        generated = " (GENERATED data)" if task == "ratings_only_demo" else " (real data)"
        metrics = cells[0].metrics
        lines += ["", f"## {task}{generated}, β = {beta:g}, seeds {[c.seed for c in cells]}", ""]
        header = ["row", *(f"valid {m}" for m in metrics), *(f"test {m}" for m in metrics)]
        lines += ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
        for row in ("best", "average"):
            stats = []
            for split in ("valid", "test"):
                for m in metrics:
                    mean, std = summarise([getattr(c, row)[split][m] for c in cells])
                    stats.append(fmt_stat(Stat(mean, std, len(cells))))
            name = "best candidate" if row == "best" else "average (size_search_average)"
            lines.append("| " + " | ".join([name, *stats]) + " |")
        lines += ["", "Per seed (test " + metrics[0] + "; members of the average, best first):", ""]
        for c in cells:
            gain = c.average["test"][metrics[0]] - c.best["test"][metrics[0]]
            lines.append(
                f"- seed {c.seed}: best candidate {c.best['test'][metrics[0]]:.4f} "
                f"({c.best['label']}); average {c.average['test'][metrics[0]]:.4f} "
                f"({gain:+.4f}), {c.average['label']}: " + " | ".join(c.average["members"])
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=["food_kitchen", "kitchen_food"])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=1, help="candidate runs at once")
    parser.add_argument("--torch_threads", type=int, default=None)
    parser.add_argument("--work", default=str(ROOT / "bench" / "_work" / "size_search_average"))
    parser.add_argument("--out", default=str(RESULTS / "size_search_average.md"))
    args = parser.parse_args()
    command = "python bench/size_search_average.py " + " ".join(sys.argv[1:])
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    warnings.filterwarnings("ignore", category=FutureWarning)  # RecBole's pandas calls
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {sorted(TASKS)}")
    started = time.perf_counter()
    prep = SimpleNamespace(
        cwd=str(ROOT), report_only=False, shared_data=str(SHARED_DATA), metrics=None
    )
    work = Path(args.work)
    plans = []  # (task, dataset, overrides, beta, seed, [(settings, cell)])
    for task in args.tasks:
        dataset, overrides = TASKS[task]
        if prepare_task(dataset, prep) is None:
            continue  # said why
        if args.torch_threads:
            overrides = (*overrides, f"--torch_threads={args.torch_threads}")
        settings = candidates_of(dataset, overrides, args.betas[0], args.seeds[0])
        for beta in args.betas:
            for seed in args.seeds:
                cells = [
                    (s, Cell(dataset, MODEL, beta, seed, (*overrides, *fixed_size_overrides(s))))
                    for s in settings
                ]
                plans.append((task, dataset, overrides, beta, seed, cells))
    if not plans:
        print("nothing to run: no task's data is available")
        return 0
    jobs = [cell for *_, cells in plans for _, cell in cells]
    print(f"{len(jobs)} candidate runs ({len(plans)} cells), cached in {work}", flush=True)

    def run(cell: Cell) -> dict:
        result = run_cell(cell, work / cell.filename(), keep_checkpoint=True)
        print(f"  done: {cell.describe()} on {cell.dataset}", flush=True)
        return result

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = dict(zip([c.key() for c in jobs], pool.map(run, jobs)))
    outcomes = []
    for task, dataset, overrides, beta, seed, cells in plans:
        runs = [(s, results[cell.key()]) for s, cell in cells]
        outcomes.append(compose(task, dataset, overrides, beta, seed, runs))
    out = Path(args.out)
    write_cells(outcomes, out.with_name(out.stem + "_cells.csv"))
    out.write_text(report(outcomes, command, time.perf_counter() - started))
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
