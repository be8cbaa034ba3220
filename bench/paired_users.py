"""Two trained models on the same held-out users, user by user: is a difference in the tables a
difference between the models, or the luck of which users were held out?

A table's cell is a mean over users; two models' cells on one split are means over the *same*
users, so their difference has a paired error far smaller than either cell's spread over seeds.
For each pair of checkpoints (the same data set, β and seed: the same split, checked) this bench
rebuilds both runs, ranks every held-out user's target items with each model, and reports:

* each model's mean NDCG@K (the table's number) and the difference B − A;
* a 95 % interval of that difference from a paired bootstrap over the users (resampled with
  replacement, the same draw for both models, a fixed seed);
* the share of users each model ranks better (ties left out);
* the difference by the length of the user's auxiliary history, the one thing a cold-start user
  brings.

It runs on the validation users as well as the test users: the validation users are the ones
every setting is chosen on, so the width of their interval is how small a difference a choice
made on them can see.

    python bench/paired_users.py --pair SVDTransfer-s1.pth MuSiC-s1.pth \\
        [--pair A-s2.pth B-s2.pth ...] [--metric ndcg@20] --out bench/results/<name>.md

Checkpoints hold the run's settings and data path (a run writes one with ``saved: True``, the
default). Per-user values never leave the process: the report holds aggregates only.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _grid import write_text_atomic
from _paths import ROOT  # noqa: F401  (puts the repository on sys.path)

HISTORY_BUCKETS = ((1, 1), (2, 2), (3, 4), (5, 9), (10, None))  # auxiliary items, inclusive
SPLIT_SETTINGS = ("dataset", "cold_ratio", "valid_ratio", "cold_item_ratio", "seed")
PARTS = ("valid", "test")


@dataclass
class PerUser:
    """One model's per-user values on one split part, and each user's auxiliary history length."""

    model: str
    users: np.ndarray
    values: np.ndarray
    history: np.ndarray


def bootstrap_means(a: np.ndarray, b: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """The mean of b − a over each of ``resamples`` paired draws of the users with replacement."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):  # 256 draws at a time: bounded memory at any size
        count = min(256, resamples - start)
        draws = rng.integers(0, len(diff), size=(count, len(diff)))
        means[start : start + count] = diff[draws].mean(axis=1)
    return means


def interval(means: np.ndarray) -> tuple[float, float]:
    """The 95 % interval of bootstrap means."""
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def bucket_of(history: np.ndarray) -> np.ndarray:
    """Index into :data:`HISTORY_BUCKETS` of each auxiliary history length."""
    index = np.full(len(history), -1)
    for n, (low, high) in enumerate(HISTORY_BUCKETS):
        index[(history >= low) & ((history <= high) if high else True)] = n
    return index


def bucket_label(n: int) -> str:
    low, high = HISTORY_BUCKETS[n]
    return f"≥ {low}" if high is None else (str(low) if low == high else f"{low}–{high}")


def per_user_values(checkpoint: Path, metric: str) -> tuple[dict, dict[str, PerUser]]:
    """(the split's settings, {part: PerUser}) of the run that wrote ``checkpoint``."""
    from recbole.utils import init_seed

    from recbole_music.checkpoint import config_from_checkpoint, read_checkpoint
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator
    from recbole_music.quick_start import build_run, resolve_model

    saved = read_checkpoint(checkpoint)
    model_class = resolve_model(saved["config"]["model"])
    config = config_from_checkpoint(saved, model_class)
    config["topk"] = sorted({*config["topk"], int(metric.split("@")[1])})
    config["metrics"] = [metric.split("@")[0]]
    init_seed(config["seed"], config["reproducibility"])  # as run_recbole_music
    _, valid_set, test_set, model, trainer = build_run(config, model_class)
    trainer.load_checkpoint(checkpoint)
    evaluator = ColdStartEvaluator(config)
    split = {key: config[key] for key in SPLIT_SETTINGS}
    # every split part reads the same training matrix: each user's auxiliary items, counted once
    aux = test_set.train_item_matrix[:, np.flatnonzero(~test_set.target_item_mask.numpy())]
    aux_items = np.asarray((aux > 0).sum(axis=1)).ravel()
    parts = {}
    for part, dataset in zip(PARTS, (valid_set, test_set)):
        if dataset is None:
            continue
        users, values = evaluator.per_user_ranking(model, dataset)
        parts[part] = PerUser(config["model"], users, values[metric], aux_items[users])
    return split, parts


@dataclass
class PairedPart:
    """Two models' per-user values on one split part; every reported number derives from them."""

    split: dict
    part: str
    a: np.ndarray  # per user, model A
    b: np.ndarray  # per user, model B
    history: np.ndarray  # per user, auxiliary items
    means: np.ndarray  # bootstrap means of b - a

    @property
    def diffs(self) -> np.ndarray:
        return self.b - self.a

    @property
    def diff(self) -> float:
        return float(self.diffs.mean())


def pair_rows(a: dict[str, PerUser], b: dict[str, PerUser], split: dict, resamples: int):
    rows = []
    for part in PARTS:
        if part not in a or part not in b:
            continue
        if not np.array_equal(a[part].users, b[part].users):
            raise SystemExit(f"paired_users: the two runs hold out different {part} users")
        means = bootstrap_means(a[part].values, b[part].values, resamples)
        rows.append(PairedPart(split, part, a[part].values, b[part].values, a[part].history, means))
    return rows


def report(
    rows: list[PairedPart], names: tuple[str, str], metric: str, command: str, about: str = ""
) -> str:
    a_name, b_name = names
    lines = [
        f"# {b_name} against {a_name}, user by user ({metric}, full ranking)",
        "",
        *([about, ""] if about else []),
        f"**Command:** `{command}`",
        "",
        f"B − A per split: the mean of each user's {metric} under B ({b_name}) minus under A "
        f"({a_name}), a 95 % paired bootstrap interval over the users, and how many users each "
        "model ranks better (ties left out). Generated by `bench/paired_users.py`; aggregates "
        "only.",
        "",
        f"| data | β | seed | users | A: {a_name} | B: {b_name} | B − A | 95 % interval | "
        "B − A (%) | B better / worse |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for part in PARTS:
        part_rows = [r for r in rows if r.part == part]
        for r in part_rows:
            s = r.split
            low, high = interval(r.means)
            a_mean = r.a.mean()
            lines.append(
                f"| {s['dataset']} ({part}) | {s['cold_ratio']:.0%} | {s['seed']} | {len(r.a):,} "
                f"| {a_mean:.4f} | {r.b.mean():.4f} | {r.diff:+.4f} | "
                f"[{low:+.4f}, {high:+.4f}] | {100 * r.diff / a_mean:+.1f} | "
                f"{int((r.diffs > 0).sum()):,} / {int((r.diffs < 0).sum()):,} |"
            )
        if len(part_rows) > 1:  # the tables' mean over seeds: each seed's users drawn apart
            a_mean = np.mean([r.a.mean() for r in part_rows])
            diff = np.mean([r.diff for r in part_rows])
            low, high = interval(np.mean([r.means for r in part_rows], axis=0))
            lines.append(
                f"| mean of the {len(part_rows)} rows above ({part}) | | | | {a_mean:.4f} | "
                f"{np.mean([r.b.mean() for r in part_rows]):.4f} | {diff:+.4f} | "
                f"[{low:+.4f}, {high:+.4f}] | {100 * diff / a_mean:+.1f} | |"
            )
    for part in PARTS:
        lines += history_table([r for r in rows if r.part == part], part, a_name)
    return "\n".join(lines) + "\n"


def history_table(rows: list[PairedPart], part: str, a_name: str) -> list[str]:
    """B − A by the length of the users' auxiliary history, every pair of ``rows`` pooled."""
    if not rows:
        return []
    lines = [
        "",
        f"## By the length of the auxiliary history ({part} users, all pairs pooled)",
        "",
        f"| auxiliary items | users | A: {a_name} | B − A | B − A (%) |",
        "|---|---:|---:|---:|---:|",
    ]
    bucket = bucket_of(np.concatenate([r.history for r in rows]))
    diffs = np.concatenate([r.diffs for r in rows])
    a_values = np.concatenate([r.a for r in rows])
    for n in range(len(HISTORY_BUCKETS)):
        chosen = bucket == n
        if not chosen.any():
            continue
        a_mean, d_mean = a_values[chosen].mean(), diffs[chosen].mean()
        share = f"{100 * d_mean / a_mean:+.1f}" if a_mean else "–"
        lines.append(
            f"| {bucket_label(n)} | {int(chosen.sum()):,} | {a_mean:.4f} | {d_mean:+.4f} | {share} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pair", nargs=2, action="append", required=True, metavar=("A", "B"), type=Path,
        help="two checkpoints of runs on the same split (repeat for more seeds)",
    )  # fmt: skip
    parser.add_argument("--metric", default="ndcg@20", help="a full-ranking metric@K")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--about", default="", help="a paragraph under the title: which runs")
    args = parser.parse_args(argv)
    from recbole_music.evaluation.cold_start_evaluator import RANKING_METRICS_SUPPORTED

    metric = args.metric.lower()
    name, _, k = metric.partition("@")
    if name not in RANKING_METRICS_SUPPORTED or not k.isdigit() or int(k) < 1:
        parser.error(
            f"--metric: expected a full-ranking metric@K, one of "
            f"{sorted(RANKING_METRICS_SUPPORTED)} with K >= 1 (ndcg@20), got {args.metric!r}"
        )
    for path in (p for pair in args.pair for p in pair):
        if not path.is_file():
            print(f"paired_users: no checkpoint {path}", file=sys.stderr)
            return 2

    rows, names = [], None
    for path_a, path_b in args.pair:
        started = time.perf_counter()
        split_a, a = per_user_values(path_a, metric)
        split_b, b = per_user_values(path_b, metric)
        if split_a != split_b:
            print(
                f"paired_users: {path_a} and {path_b} were not run on the same split: "
                f"{split_a} against {split_b}",
                file=sys.stderr,
            )
            return 2
        pair_names = (next(iter(a.values())).model, next(iter(b.values())).model)
        names = names or pair_names
        rows += pair_rows(a, b, split_a, args.resamples)
        print(
            f"[paired_users] {path_a.name} / {path_b.name}: {time.perf_counter() - started:.0f} s"
        )

    command = (
        "python bench/paired_users.py "
        + " ".join(f"--pair {a} {b}" for a, b in args.pair)
        + f" --metric {metric} --out {args.out}"
    )
    text = report(rows, names, metric, command, args.about)
    write_text_atomic(text, args.out)  # a killed run leaves the previous report whole
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
