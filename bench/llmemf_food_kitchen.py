"""LLMEMF, its ablations, and RecBole's SASRec and GRU4Rec on the real Food–Kitchen sequences.

    python bench/llmemf_food_kitchen.py                      # 3 seeds, writes the table below
    python bench/llmemf_food_kitchen.py --seeds 1 --epochs 2 --out /tmp/x.md   # a quick look

Every model of a seed runs on the identical sequential split (leave-last-out for the held-out
overlapping users; docs/llmemf.md), with the same epochs, batch size, learning rate and maximum
sequence length; test metrics are those of the best validation epoch (NDCG@10). Models of one
seed run one after another, seeds in turn, so a busy machine slows them alike; the time of each
training epoch is measured around RecBole's ``Trainer._train_epoch`` and reported as a ratio to
SASRec's.

Needs ``dataset/food_kitchen`` (docs/llmemf.md: the build command) and its item features
(``python -m dataset_prep enrich --dataset food_kitchen``; without them LLMEMF runs on IDs only,
and the table says what it ran on). Writes ``bench/results/llmemf_food_kitchen.md`` and a JSON of
every run beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _grid import write_text_atomic
from _paths import ROOT

# (row name, model, extra settings)
VARIANTS = {
    "LLMEMF": ("LLMEMF", {}),
    "LLMEMF w/o cross-domain attention": ("LLMEMF", {"use_cross_domain": False}),
    "LLMEMF w/o text vectors (IDs only)": ("LLMEMF", {"use_text": False}),
    "LLMEMF w/o image": ("LLMEMF", {"use_image": False}),
    "LLMEMF w/o LLM enrichment": ("LLMEMF", {"use_llm_text": False}),
    "SASRec": ("SASRec", {}),
    "GRU4Rec": ("GRU4Rec", {}),
}
DEFAULT_VARIANTS = ["LLMEMF", "LLMEMF w/o cross-domain attention", "SASRec", "GRU4Rec"]
METRICS = ("hit@10", "ndcg@10", "mrr@10")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="food_kitchen")
    p.add_argument("--seeds", default="2020,2021,2022")
    p.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, of: {', '.join(VARIANTS)}",
    )
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--stopping-step", type=int, default=3)
    p.add_argument(
        "--softmax",
        default="domain",
        help="sequential_softmax of every model: domain (the label's domain) or all",
    )
    p.add_argument(
        "--negatives",
        type=int,
        default=0,
        help="sequential_negatives of every model: K uniform draws (0 = the full softmax)",
    )
    p.add_argument("--max-len", type=int, default=15)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--learning-rate", type=float, default=0.002)
    p.add_argument(
        "--train-roles",
        default="overlap",
        help="seq_train_roles: whose sequences train (overlap, side, aux_only)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "llmemf_food_kitchen.md"))
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the Markdown from the JSON beside --out, running nothing",
    )
    return p.parse_args(argv)


class EpochTimer:
    """Wall time of every training epoch (RecBole's ``Trainer._train_epoch``)."""

    def __init__(self):
        from recbole.trainer import Trainer

        self.times: list[float] = []
        original = Trainer._train_epoch
        timer = self

        def timed(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                timer.times.append(time.perf_counter() - start)

        Trainer._train_epoch = timed

    def take(self) -> list[float]:
        out, self.times = self.times, []
        return out


def args_has_identical(names) -> bool:
    return "LLMEMF w/o image" in names or "LLMEMF w/o LLM enrichment" in names


def mean_std(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def feature_note(dataset_dir: Path) -> str:
    lines = []
    for table in ("item_text_llm", "item_text_raw", "item_image"):
        manifest = dataset_dir / "features" / f"{table}.json"
        if manifest.is_file():
            m = json.loads(manifest.read_text())
            model = m.get("model")
            if model == "default":
                model = "all-MiniLM-L6-v2 (packaged default text encoder, NOT CLIP)"
            lines.append(f"`{table}`: {m['rows']} items × {m['dim']}, encoder {model}")
        else:
            lines.append(f"`{table}`: absent")
    return "; ".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report_only:
        saved = json.loads(Path(args.out).with_suffix(".json").read_text())
        ran = argparse.Namespace(**{**saved["args"], "out": args.out})
        runs = saved["runs"]
        names = [n for n in VARIANTS if any(r["variant"] == n for r in runs)]
        seeds = sorted({r["seed"] for r in runs})
        total = sum(r["wall_seconds"] for r in runs)
        write_text_atomic(report(ran, names, seeds, runs, total), Path(args.out))
        print(Path(args.out).read_text())
        return 0
    if not (ROOT / "dataset" / args.dataset / f"{args.dataset}.inter").is_file():
        # real data (../shared/data) is never in the project: no data set, no benchmark
        print(
            f"skipped: dataset/{args.dataset} is absent; build it first (docs/llmemf.md: "
            f"`python -m dataset_prep build --name {args.dataset} ...`)"
        )
        return 0
    sys.argv = [sys.argv[0]]  # RecBole's Config reads --key=value from sys.argv
    import torch

    torch.set_num_threads(args.threads)
    import recbole_music  # noqa: F401
    from recbole_music.quick_start import run_recbole_music

    seeds = [int(s) for s in args.seeds.split(",")]
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; one of {list(VARIANTS)}")
    timer = EpochTimer()
    runs: list[dict] = []
    started = time.time()
    checkpoints = tempfile.mkdtemp(prefix="llmemf_bench_")
    common = {
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "train_batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seq_train_roles": args.train_roles.split(","),
        "hidden_size": args.hidden,
        "embedding_size": args.hidden,
        "show_progress": False,
        "state": "INFO",
        "checkpoint_dir": checkpoints,
        "torch_threads": args.threads,
        "sequential_softmax": args.softmax,
        "sequential_negatives": args.negatives,
    }
    for seed in seeds:
        for name in names:
            model, extra = VARIANTS[name]
            run_start = time.time()
            result = run_recbole_music(
                model, args.dataset, config_dict={**common, **extra, "seed": seed}
            )
            epochs = timer.take()
            runs.append(
                {
                    "variant": name,
                    "model": model,
                    "seed": seed,
                    "loss": result["run"]["loss"],
                    "candidates": result["run"]["candidates"],
                    "test": result["test_result"],
                    "valid": result["best_valid_result"],
                    "best_epoch": result["run"].get("best_epoch"),  # 0-based, as RecBole's
                    "epoch_seconds": epochs,
                    "wall_seconds": round(time.time() - run_start, 1),
                }
            )
            print(
                f"[{time.time() - started:7.0f}s] seed {seed} {name}: "
                f"{ {k: result['test_result'].get(k) for k in METRICS} } "
                f"epochs {len(epochs)}, {statistics.mean(epochs):.1f}s/epoch",
                flush=True,
            )
        # after every seed: a run cut short still leaves the seeds it finished
        done = seeds[: seeds.index(seed) + 1]
        write(args, names, done, runs, time.time() - started)
    print(Path(args.out).read_text())
    return 0


def write(args, names, seeds, runs, total) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        json.dumps({"args": vars(args), "runs": runs}, indent=2), out.with_suffix(".json")
    )
    write_text_atomic(report(args, names, seeds, runs, total), out)


def leader_line(by: dict, seeds: list) -> list[str]:
    """A line that says so when a baseline's mean test NDCG@10 beats LLMEMF's, seed by seed."""

    def ndcg(rs):
        return {r["seed"]: r["test"].get("ndcg@10") for r in rs}

    if not by.get("LLMEMF"):
        return []
    means = {n: statistics.mean(ndcg(rs).values()) for n, rs in by.items() if rs}
    best = max(means, key=means.get)
    if best == "LLMEMF" or best.startswith("LLMEMF"):
        return []
    mine, theirs = ndcg(by["LLMEMF"]), ndcg(by[best])
    ahead = sum(theirs[s] > mine[s] for s in seeds if s in mine and s in theirs)
    return [
        f"- **{best} leads LLMEMF**: test NDCG@10 {means[best]:.4f} against "
        f"{means['LLMEMF']:.4f}, ahead on {ahead} of {len(seeds)} seeds."
    ]


def report(args, names, seeds, runs, total) -> str:
    by = {n: [r for r in runs if r["variant"] == n] for n in names}

    def epoch_time(rs):
        return statistics.mean(t for r in rs for t in r["epoch_seconds"])

    sasrec = epoch_time(by["SASRec"]) if by.get("SASRec") else None
    rows = [
        "| model | HR@10 | NDCG@10 | MRR@10 | s / epoch | epoch time / SASRec | epochs run |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for n in names:
        rs = by[n]
        t = epoch_time(rs)
        ratio = f"{t / sasrec:.2f}" if sasrec else "n/a"
        cells = [mean_std([r["test"].get(k) for r in rs]) for k in METRICS]
        epochs = ",".join(str(len(r["epoch_seconds"])) for r in rs)
        rows.append(f"| {n} | {' | '.join(cells)} | {t:.1f} | {ratio} | {epochs} |")
        if n == "LLMEMF" and not args_has_identical(names):
            for same in ("LLMEMF w/o image", "LLMEMF w/o LLM enrichment"):
                rows.append(
                    f"| {same} | = LLMEMF (the same model on this data, see below; not "
                    "run) | | | | | |"
                )
    dataset_dir = ROOT / "dataset" / args.dataset
    import shlex

    losses = (
        "; ".join(sorted({f"{r['model']}: {r['loss']}" for r in runs if r.get("loss")}))
        or "not recorded"
    )
    candidates = next((r["candidates"] for r in runs if r.get("candidates")), "not recorded")
    leader = leader_line(by, seeds)
    per_seed = [
        "| model | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|" + "---:|" * len(seeds),
    ]
    for n in names:
        cells = []
        for seed in seeds:
            hit = [r for r in by[n] if r["seed"] == seed]
            cells.append(f"{hit[0]['test'].get('ndcg@10'):.4f}" if hit else "n/a")
        per_seed.append(f"| {n} | " + " | ".join(cells) + " |")

    command = "python bench/llmemf_food_kitchen.py " + " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}"
        for k, v in vars(args).items()
        if k not in ("out", "report_only")
    )
    return "\n".join(
        [
            f"# LLMEMF vs SASRec and GRU4Rec on {args.dataset} (REAL data)",
            "",
            "Real Amazon Food → Kitchen interaction sequences (`../shared/data/food_kitchen`, order "
            "positions as timestamps, item titles as text). Next-item prediction of the held-out "
            "overlapping users' LAST KITCHEN item from their interleaved history (leave-last-out, "
            "20% test / 10% validation users drawn per seed; docs/llmemf.md), ranked over all "
            "kitchen items with RecBole's metric classes; the test metrics of the best validation "
            "epoch (NDCG@10). Mean ± sample std over seeds "
            + ", ".join(map(str, seeds))
            + " (the seed draws the split and initialises the model).",
            "",
            *rows,
            "",
            "Test NDCG@10 per seed (pairs compare seed by seed):",
            "",
            *per_seed,
            "",
            f"- Settings, the same for every model: at most {args.epochs} epochs (early stop after "
            f"{args.stopping_step} without a better validation NDCG@10), batch {args.batch_size}, "
            f"learning rate {args.learning_rate}, sequences of the last {args.max_len} items, "
            f"width {args.hidden}; training sequences of the `{args.train_roles}` users; "
            f"{args.threads} CPU thread(s). Other hyper-parameters: the models' defaults "
            "(RecBole's for SASRec and GRU4Rec, properties/model/LLMEMF.yaml for LLMEMF).",
            f"- Item features LLMEMF ran on: {feature_note(dataset_dir)}.",
            "- No LLM and no CLIP weights can be had on this machine (no model hub), and the "
            "Food–Kitchen data has no images: `dataset_prep enrich` fell back to raw-title vectors "
            "from the packaged all-MiniLM-L6-v2 and wrote no image table. On this data the full "
            'LLMEMF therefore IS its "w/o image" and "w/o LLM enrichment" variants (same '
            "tables, same parameters, same seed; tests/test_llmemf.py checks that the three build "
            "identical predictions); those rows are not run unless asked for with --variants.",
            f"- Loss, the same for every model: {losses}. "
            "The result file of every run names the loss it trained with "
            "(`run.loss`); `sequential_softmax` and `sequential_negatives` set it "
            "(properties/sequential.yaml, docs/llmemf.md).",
            f"- Candidates at evaluation: {candidates}.",
            *leader,
            "- Changes from the earlier version of this table (3 epochs, LLMEMF 0.0304, SASRec "
            "0.0257, GRU4Rec 0.0208 test NDCG@10): its evaluation already ranked kitchen items "
            "only for every model, but training was not like for like: SASRec and GRU4Rec ran "
            "RecBole's cross-entropy over all 36.3k items (padding included) for every example, "
            "LLMEMF over the label's domain. Now every model trains with the same objective; the "
            "domain softmax also makes SASRec's and GRU4Rec's epochs cheaper "
            "([sequential_epoch_cost.md](sequential_epoch_cost.md)), and the budget is 5 epochs.",
            f"- Not converged: {args.epochs} epochs at most for every model, a CPU budget on a "
            "shared 2-core machine; these numbers rank the models at an equal, small training "
            "budget, not at their best (the `epochs run` column shows where early stopping "
            "fired).",
            f"- s / epoch: mean wall time of one training epoch on a shared 2-core machine (other "
            f"jobs were running); the ratio to SASRec is the comparable number. Whole run: "
            f"{total / 60:.1f} min.",
            f"- Command: `{command}`. Every run's numbers: `{Path(args.out).with_suffix('.json').name}`.",
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
