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

On implicit data the counterpart is the strongest baseline of the real-data tables,
``SVDTransfer``: its own search's choice, and the same ensemble selection over the points of its
search grid (each point a copy of the fitted model at those hyper-parameters), so the average is
set beside the same idea applied to the baseline. Every choice is made on the validation users;
the test users only score what was chosen. A reloaded candidate must score its run's validation
result again (checked, to 4 decimals), and the counterpart's grid must choose what its search
chose.

    python bench/size_search_average.py --tasks food_kitchen kitchen_food --betas 0.2 \\
        --seeds 1 2 3 --jobs 2 --torch_threads=1

Tasks: ``food_kitchen`` / ``kitchen_food`` (real, implicit; built from ../shared/data when
absent, skipped when that is absent too), the same with new items held out as in the dual
cold-start table (``food_kitchen_dual`` / ``kitchen_food_dual``: ``--cold_item_ratio``; that
table's β is 0.5) and ``ratings_only_demo`` (the GENERATED demo read as ratings alone:
interaction vectors, history user vectors). ``bench/compare.py --cells-from-csv`` takes its
averaged MuSiC cells from this bench's cells (bench/comparison/imported.py). Candidate runs are cached in
``--work`` (an interrupted bench resumes). The result is ``bench/results/size_search_average.md``
with its per-seed cells in ``size_search_average_cells.csv`` (MuSiC's rows with ``seconds``, the
sum of the cell's candidate runs' seconds: what one search, plain or averaged, costs); a cell
already in that CSV is read from it and not run again, so a grid too long for one sitting is
completed cell by cell.
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from _grid import (
    Cell,
    Stat,
    atomic_writer,
    fmt_stat,
    run_cell,
    summarise,
    write_text_atomic,
)
from _in_process import cell_config
from _paths import ROOT
from comparison.catalogue import COLD_ITEM_RATIO
from comparison.plan import fixed_size_overrides, settings_of_text
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
    # the dual cold-start table's cells (new items held out as well; its β is 0.5)
    "food_kitchen_dual": ("food_kitchen", (f"--cold_item_ratio={COLD_ITEM_RATIO}",)),
    "kitchen_food_dual": ("kitchen_food", (f"--cold_item_ratio={COLD_ITEM_RATIO}",)),
}
RESULTS = ROOT / "bench" / "results"
CELLS_CSV = RESULTS / "size_search_average_cells.csv"  # the default --out's cells
BEST_ROW = f"{MODEL}: best candidate"
AVERAGE_ROW = f"{MODEL}: average (size_search_average)"
# the strongest baseline of the real-data tables; its grid gets the same selection
COUNTERPART = "SVDTransfer"


@dataclass
class Answer:
    """One row of a cell: what was chosen on the validation users and how it scores."""

    row: str
    valid: dict  # {metric: value}
    test: dict
    members: list[str]  # what the row is made of, best first
    candidates: int  # how many it was chosen from
    # MuSiC's rows: its candidate runs' seconds summed (the search trains them all either way;
    # evaluating the average adds little); None where not recorded (the counterpart's rows)
    seconds: float | None = None


@dataclass
class Outcome:
    task: str
    beta: float
    seed: int
    metrics: list[str]
    answers: list[Answer] = field(default_factory=list)


def config_of(model: str, dataset: str, overrides: tuple[str, ...], beta: float, seed: int):
    """RecBole's Config of the cell's run of ``model`` (the split and evaluation every
    candidate shares); ``overrides`` in the command line's ``--key=value`` form."""
    from recbole_music.settings import parse_value, split_setting

    settings = dict(split_setting(o.removeprefix("--")) for o in overrides)
    parsed = {key: parse_value(text) for key, text in settings.items()}
    return cell_config(model, dataset, beta, seed, parsed)


def candidates_of(dataset: str, overrides: tuple[str, ...], beta: float, seed: int) -> list[dict]:
    """The settings of every candidate a search of this run trains, the run's own first."""
    from recbole_music.model.music.model import MuSiC
    from recbole_music.quick_start import build_run
    from recbole_music.size_search import candidate_settings

    config = config_of(MODEL, dataset, overrides, beta, seed)
    _, valid_set, _, model, _ = build_run(config, MuSiC)
    others = candidate_settings(model, config, valid_set)
    keys = sorted({key for candidate in others for key in candidate})
    own = {key: config[key] for key in keys}
    return [own, *[{key: c.get(key, own[key]) for key in keys} for c in others]]


def label_of(settings: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())


def settings_of_label(label: str) -> dict:
    """The inverse of :func:`label_of` (integers back as integers): a member of the CSV."""
    return settings_of_text(";".join(label.split(", ")))


def plain_choice(trained: list, bigger: bool):
    """The best validation score, a tie keeping the earlier candidate (as every search does)."""
    best = trained[0]
    for candidate in trained[1:]:
        gain = candidate.valid_score - best.valid_score
        if gain > 0 if bigger else gain < 0:
            best = candidate
    return best


def selected_average(trained, best, config, valid_set, test_set, evaluator, target_mask):
    """(members, validation result, test result) of ``select_average`` from ``best``."""
    import logging

    from recbole.utils import calculate_valid_score

    from recbole_music.model.score_average import ScoreAverage
    from recbole_music.size_search import select_average

    def average(members):
        result = evaluator.evaluate(
            ScoreAverage([m.model for m in members], target_mask), valid_set
        )
        return calculate_valid_score(result, config["valid_metric"].lower()), result

    members, _, valid = select_average(trained, best, average, config, logging.getLogger())
    test = evaluator.evaluate(ScoreAverage([m.model for m in members], target_mask), test_set)
    return members, dict(valid), dict(test)


def compose(task, dataset, overrides, beta, seed, runs: list[tuple[dict, dict]]) -> Outcome:
    """MuSiC's best candidate and selected average from one cell's candidate runs."""
    from recbole_music.checkpoint import config_from_checkpoint, read_checkpoint
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator
    from recbole_music.inference import rebuilt_model
    from recbole_music.model.music.model import MuSiC
    from recbole_music.quick_start import build_run
    from recbole_music.size_search import TrainedCandidate

    config = config_of(MODEL, dataset, overrides, beta, seed)
    train_data, valid_set, test_set, _, _ = build_run(config, MuSiC)
    evaluator = ColdStartEvaluator(config)
    metric = config["valid_metric"].lower()
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
                f"scores {metric} {again[metric]} on the validation users, its run "
                f"{result['valid'][metric]}"
            )
        trained.append(TrainedCandidate(model, None, result["valid"][metric], again, settings))
    best = plain_choice(trained, config["valid_metric_bigger"])
    best_run = runs[[c is best for c in trained].index(True)][1]
    members, valid, test = selected_average(
        trained, best, config, valid_set, test_set, evaluator, train_data._dataset.target_item_mask
    )
    metrics = [m for m in ("ndcg@20", "recall@20", "rmse", "mae") if m in test]
    n = len(trained)
    recorded = [run.get("seconds") for _, run in runs]
    seconds = None if None in recorded else float(sum(recorded))
    return Outcome(
        task,
        beta,
        seed,
        metrics,
        [
            Answer(
                BEST_ROW,
                best_run["valid"],
                best_run["test"],
                [label_of(best.settings)],
                n,
                seconds,
            ),
            Answer(
                AVERAGE_ROW,
                valid,
                test,
                [label_of(m.settings) for m in members],
                n,
                seconds,
            ),
        ],
    )


def grid_counterpart(
    model_name: str, dataset: str, overrides, beta: float, seed: int
) -> list[Answer]:
    """A neighbourhood baseline's own search (the grid point chosen on the validation users)
    and the same ensemble selection over its grid: the average's fair counterpart."""
    import copy

    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator
    from recbole_music.quick_start import build_run, resolve_model
    from recbole_music.size_search import TrainedCandidate

    config = config_of(model_name, dataset, overrides, beta, seed)
    train_data, valid_set, test_set, model, trainer = build_run(config, resolve_model(model_name))
    trainer.fit(train_data, valid_set, saved=False, verbose=False)
    chosen = dict(model.hyper)
    evaluator = ColdStartEvaluator(config)
    metric = config["valid_metric"].lower()
    trained = []
    for values in model.search_candidates(False):
        member = copy.deepcopy(model)
        member.set_hyper(values)
        result = evaluator.evaluate(member, valid_set)
        trained.append(TrainedCandidate(member, None, result[metric], result, values))
    best = plain_choice(trained, config["valid_metric_bigger"])
    if best.settings != chosen:
        raise RuntimeError(
            f"{model_name}: its search chose {chosen}, the grid here {best.settings}"
        )
    model.set_hyper(chosen)
    test = evaluator.evaluate(model, test_set)
    members, valid, average_test = selected_average(
        trained, best, config, valid_set, test_set, evaluator, train_data._dataset.target_item_mask
    )
    n = len(trained)
    return [
        Answer(
            f"{model_name}: chosen grid point",
            dict(best.valid_result),
            dict(test),
            [label_of(chosen)],
            n,
        ),
        Answer(
            f"{model_name}: average over its grid (the same selection)",
            valid,
            average_test,
            [label_of(m.settings) for m in members],
            n,
        ),
    ]


CSV_HEADER = [
    "task",
    "beta",
    "seed",
    "row",
    "metric",
    "valid",
    "test",
    "candidates",
    "members",
    "seconds",
]


def write_cells(outcomes: list[Outcome], path: Path) -> None:
    with atomic_writer(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for o in outcomes:
            for a in o.answers:
                for metric in o.metrics:
                    writer.writerow(
                        [
                            o.task,
                            o.beta,
                            o.seed,
                            a.row,
                            metric,
                            f"{a.valid[metric]:.4f}",
                            f"{a.test[metric]:.4f}",
                            a.candidates,
                            " | ".join(a.members),
                            "" if a.seconds is None else f"{a.seconds:.1f}",
                        ]
                    )


def read_cells(path: Path) -> list[Outcome]:
    """The outcomes a cells CSV holds (the committed ones: a cell there is not run again)."""
    if not path.is_file():
        return []
    outcomes: dict[tuple, Outcome] = {}
    with open(path, newline="") as handle:
        for line in csv.DictReader(handle):
            key = (line["task"], float(line["beta"]), int(line["seed"]))
            outcome = outcomes.setdefault(key, Outcome(*key, []))
            if line["metric"] not in outcome.metrics:
                outcome.metrics.append(line["metric"])
            answer = next((a for a in outcome.answers if a.row == line["row"]), None)
            if answer is None:
                members = line["members"].split(" | ")
                seconds = float(line["seconds"]) if line.get("seconds") else None
                answer = Answer(line["row"], {}, {}, members, int(line["candidates"]), seconds)
                outcome.answers.append(answer)
            answer.valid[line["metric"]] = float(line["valid"])
            answer.test[line["metric"]] = float(line["test"])
    return list(outcomes.values())


def report(outcomes: list[Outcome], commands: list[str]) -> str:
    lines = [
        "# MuSiC's size search: the best candidate, or the average `size_search_average` selects",
        "",
        "Command(s), each adding the cells it lacked (cached candidate runs are not retrained; a "
        "cell already in `size_search_average_cells.csv` is read from it):",
        "",
        *[f"    {c}" for c in commands],
        "",
        "Both MuSiC rows come from the same candidate runs of each split "
        "(bench/size_search_average.py's docstring); on implicit data the neighbourhood baseline "
        "strongest in the real-data tables gets the same selection over its own search grid as a "
        "counterpart. Every choice is made on the validation users; the test users score only "
        "what was chosen. Mean ± std over the seeds; per-seed cells in "
        "`size_search_average_cells.csv`.",
    ]
    by_task: dict[tuple[str, float], list[Outcome]] = {}
    for o in sorted(outcomes, key=lambda o: (o.task, o.beta, o.seed)):
        by_task.setdefault((o.task, o.beta), []).append(o)
    for (task, beta), cells in by_task.items():
        generated = " (GENERATED data)" if task == "ratings_only_demo" else " (real data)"
        metrics = cells[0].metrics
        seeds = [c.seed for c in cells]
        lines += ["", f"## {task}{generated}, β = {beta:g}, seeds {seeds}", ""]
        header = ["row", *(f"valid {m}" for m in metrics), *(f"test {m}" for m in metrics)]
        lines += ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
        for row in [a.row for a in cells[0].answers]:
            answers = [next(a for a in c.answers if a.row == row) for c in cells]
            stats = []
            for split in ("valid", "test"):
                for m in metrics:
                    values = [getattr(a, split)[m] for a in answers]
                    if len(values) == 1:  # one seed: no spread to show
                        stats.append(f"{values[0]:.4f}")
                    else:
                        stats.append(fmt_stat(Stat(*summarise(values), len(values))))
            lines.append("| " + " | ".join([row, *stats]) + " |")
        keys = ["rmse", "mae"] if "rmse" in metrics else ["ndcg@20", "recall@20"]
        lines += ["", f"Per seed, test {' / '.join(keys)} (each row's members, best first):", ""]
        for c in cells:
            seconds = next((a.seconds for a in c.answers if a.seconds is not None), None)
            cost = "" if seconds is None else f" (MuSiC's candidate runs: {seconds:,.0f} s in all)"
            lines.append(f"- seed {c.seed}:{cost}")
            for a in c.answers:
                values = " / ".join(f"{a.test[k]:.4f}" for k in keys)
                lines.append(
                    f"  - {a.row}: {values} ({len(a.members)} of {a.candidates}: "
                    + " | ".join(a.members)
                    + ")"
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
    parser.add_argument("--counterpart", default=COUNTERPART, help="implicit data; '' = none")
    parser.add_argument("--work", default=str(ROOT / "bench" / "_work" / "size_search_average"))
    parser.add_argument("--out", default=str(RESULTS / "size_search_average.md"))
    args = parser.parse_args()
    command = "python bench/size_search_average.py " + " ".join(sys.argv[1:])
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    warnings.filterwarnings("ignore", category=FutureWarning)  # RecBole's pandas calls
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {sorted(TASKS)}")
    out = Path(args.out)
    cells_csv = out.with_name(out.stem + "_cells.csv")
    done = {(o.task, o.beta, o.seed): o for o in read_cells(cells_csv)}
    prep = SimpleNamespace(
        cwd=str(ROOT), report_only=False, shared_data=str(SHARED_DATA), metrics=None
    )
    work = Path(args.work)
    plans = []  # (task, dataset, overrides, beta, seed, [(settings, cell)])
    for task in args.tasks:
        missing = [(b, s) for b in args.betas for s in args.seeds if (task, b, s) not in done]
        dataset, overrides = TASKS[task]
        if not missing or prepare_task(dataset, prep) is None:
            continue  # nothing to add, or its data is absent (said why)
        if args.torch_threads:
            overrides = (*overrides, f"--torch_threads={args.torch_threads}")
        settings = candidates_of(dataset, overrides, *missing[0])
        for beta, seed in missing:
            cells = [
                (s, Cell(dataset, MODEL, beta, seed, (*overrides, *fixed_size_overrides(s))))
                for s in settings
            ]
            plans.append((task, dataset, overrides, beta, seed, cells))
    jobs = [cell for *_, cells in plans for _, cell in cells]
    print(f"{len(jobs)} candidate runs ({len(plans)} cells to add), cached in {work}", flush=True)

    def run(cell: Cell) -> dict:
        result = run_cell(cell, work / cell.filename(), keep_checkpoint=True)
        print(f"  done: {cell.describe()} on {cell.dataset}", flush=True)
        return result

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = dict(zip([c.key() for c in jobs], pool.map(run, jobs)))
    for task, dataset, overrides, beta, seed, cells in plans:
        runs = [(s, results[cell.key()]) for s, cell in cells]
        outcome = compose(task, dataset, overrides, beta, seed, runs)
        if args.counterpart and "ndcg@20" in outcome.metrics and "rmse" not in outcome.metrics:
            outcome.answers += grid_counterpart(args.counterpart, dataset, overrides, beta, seed)
        # each cell as soon as it is composed, into the CSV as it is now (another invocation
        # may have added cells since this one read it)
        done = {(o.task, o.beta, o.seed): o for o in read_cells(cells_csv)}
        done[(task, beta, seed)] = outcome
        write_cells(list(done.values()), cells_csv)
    commands = _commands_before(out) + ([command] if plans else [])
    if done:
        write_text_atomic(report(list(done.values()), commands), out)
        print(out.read_text())
    else:
        print("nothing to report: no task's data is available")
    return 0


def _commands_before(out: Path) -> list[str]:
    """The commands an earlier report lists (indented lines under its first paragraph)."""
    if not out.is_file():
        return []
    return [line.strip() for line in out.read_text().splitlines() if line.startswith("    python ")]


if __name__ == "__main__":
    raise SystemExit(main())
