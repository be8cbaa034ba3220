"""Two processes (``--nproc=2``, RecBole's DDP on gloo) against one, side by side on the demo.

For each model and seed, the same command runs once on one process and once on two, both with
one torch thread per process:

    python run_recbole_music.py --model=<model> --dataset=movie_music_demo --seed=<s> \
        --torch_threads=1 [--nproc=2 --port=<free>]

Both runs share the split (same seed) and a step sees the whole batch either way (each process
half of it, gradients averaged); the shard order and the negatives differ, so the numbers agree
within a tolerance rather than bit for bit. The tolerance, fixed before measuring:
|test RMSE(2) - test RMSE(1)| <= TOLERANCE_RMSE on every seed. Writes
bench/results/ddp_agreement.md with every cell.

    python bench/ddp_agreement.py [--models TargetMF,EMCDR,MuSiC] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _grid import summarise, write_text_atomic
from _paths import ROOT
from demo_main_job import cpu_model

from dataset_prep.demo_build import ensure_demo_dataset
from dataset_prep.layout import DEMO_DATASET
from recbole_music.distributed import free_local_port

TOLERANCE_RMSE = 0.03  # about the demo's seed-to-seed spread of these models' test RMSE
METRICS = ("rmse", "mae", "ndcg@20")


def run(model: str, seed: int, nproc: int, folder: Path) -> dict:
    result = folder / f"{model}-{seed}-{nproc}.json"
    cmd = [
        sys.executable,
        str(ROOT / "run_recbole_music.py"),
        f"--model={model}",
        f"--dataset={DEMO_DATASET}",
        f"--seed={seed}",
        "--torch_threads=1",
        f"--result_json={result}",
    ]
    if nproc > 1:
        cmd += [f"--nproc={nproc}", f"--port={free_local_port()}"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{model} seed {seed} nproc {nproc} failed:\n{done.stderr[-3000:]}")
    payload = json.loads(result.read_text())
    return {
        "model": model,
        "seed": seed,
        "nproc": nproc,
        "wall": wall,
        "best_epoch": payload["run"]["best_epoch"],
        **{m: payload["test"][m] for m in METRICS},
    }


def report(rows: list[dict], args) -> str:
    cells = [
        "| model | seed | processes | test RMSE | test MAE | test NDCG@20 | best epoch | wall (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells.append(
            f"| {r['model']} | {r['seed']} | {r['nproc']} | {r['rmse']:.4f} | {r['mae']:.4f} | "
            f"{r['ndcg@20']:.4f} | {r['best_epoch']} | {r['wall']:.1f} |"
        )
    summary = [
        "| model | test RMSE, 1 process | 2 processes | largest per-seed gap | within "
        f"{TOLERANCE_RMSE} | test NDCG@20, 1 process | 2 processes |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for model in args.models:
        one = {r["seed"]: r for r in rows if r["model"] == model and r["nproc"] == 1}
        two = {r["seed"]: r for r in rows if r["model"] == model and r["nproc"] == 2}
        gap = max(abs(two[s]["rmse"] - one[s]["rmse"]) for s in one)
        summary.append(
            f"| {model} | {_mean_std([one[s]['rmse'] for s in one])} | "
            f"{_mean_std([two[s]['rmse'] for s in two])} | {gap:.4f} | "
            f"{'yes' if gap <= TOLERANCE_RMSE else 'NO'} | "
            f"{_mean_std([one[s]['ndcg@20'] for s in one])} | "
            f"{_mean_std([two[s]['ndcg@20'] for s in two])} |"
        )
    shown = " ".join(str(s) for s in args.seeds)
    return f"""# Two processes against one: RecBole's DDP on CPU (`--nproc=2`)

Each model and seed ran twice on the **generated** demo, one run after the other:

    python run_recbole_music.py --model=<model> --dataset={DEMO_DATASET} --seed=<s> --torch_threads=1
    python run_recbole_music.py --model=<model> --dataset={DEMO_DATASET} --seed=<s> --torch_threads=1 --nproc=2 --port=<free>

Measured with `python bench/ddp_agreement.py --models {",".join(args.models)} --seeds {shown}` on
{date.today()}: {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, CPU
only (gloo), on a machine shared with other jobs (the wall times are not a speed measurement).
The two runs of a seed share the split and train until early stopping on the validation users;
the processes' shard order and negatives differ from the single process's, so the numbers agree
within a tolerance, not bit for bit. **The rule, fixed before the runs: every seed's test RMSE
within {TOLERANCE_RMSE} of the single process's** (about these models' seed-to-seed spread here).

{chr(10).join(summary)}

Every run (mean ± std above over seeds {shown}):

{chr(10).join(cells)}
"""


def _mean_std(values: list[float]) -> str:
    mean, spread = summarise(values)
    return f"{mean:.4f} ± {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="TargetMF,EMCDR,MuSiC")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ddp_agreement.md"))
    args = parser.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    ensure_demo_dataset(ROOT / "dataset")  # built when missing, before the first run
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for seed in args.seeds:
                for nproc in (1, 2):
                    rows.append(run(model, seed, nproc, Path(tmp)))
                    r = rows[-1]
                    print(
                        f"{model} seed {seed} nproc {nproc}: test RMSE {r['rmse']:.4f}, "
                        f"{r['wall']:.1f} s",
                        flush=True,
                    )
    text = report(rows, args)
    write_text_atomic(text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()
