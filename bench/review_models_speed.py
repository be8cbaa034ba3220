"""Time a demo run of each review-based baseline (CATN, OmniMatch) as a user runs it.

Each run is the plain command on the GENERATED demo data with the model's YAML defaults and the
default torch threads, one run at a time (nothing else should run on the machine meanwhile):

    python run_recbole_music.py --model=<model> --dataset=movie_music_demo --seed=<s>

The demo folder is built once before the first timed run, so a row is the time of a run on data
already built: loading, the review documents, training until early stopping on the validation
users, and the test evaluation. Writes bench/results/review_models_speed.md.

    python bench/review_models_speed.py [--models CATN,OmniMatch] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _grid import write_text_atomic
from _paths import ROOT
from demo_main_job import cpu_model

from dataset_prep.demo_build import ensure_demo_dataset
from dataset_prep.layout import DEMO_DATASET

AIM_SECONDS = 180  # the review-based baselines' target: a demo run in under 3 minutes


def command(model: str, seed: int, result: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "run_recbole_music.py"),
        f"--model={model}",
        f"--dataset={DEMO_DATASET}",
        f"--seed={seed}",
        f"--result_json={result}",
    ]


def timed_run(model: str, seed: int, folder: Path) -> dict:
    result = folder / f"{model}-{seed}.json"
    start = time.perf_counter()
    done = subprocess.run(command(model, seed, result), cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{model} seed {seed} failed:\n{done.stderr[-3000:]}")
    payload = json.loads(result.read_text())
    run = payload["run"]
    return {
        "model": model,
        "seed": seed,
        "wall": wall,
        "training": run["seconds"]["training"],
        "best_epoch": run["best_epoch"],
        "rmse": payload["test"].get("rmse"),
    }


def report(rows: list[dict], args) -> str:
    lines = [
        "| model | seed | wall (s) | training + validation (s) | best epoch | test RMSE |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['seed']} | {r['wall']:.1f} | {r['training']:.1f} | "
            f"{r['best_epoch']} | {r['rmse']:.4f} |"
        )
    summary = ["| model | median wall (s) | max wall (s) | aim |", "|---|---:|---:|---|"]
    for model in args.models:
        walls = [r["wall"] for r in rows if r["model"] == model]
        verdict = "meets" if max(walls) < AIM_SECONDS else "MISSES"
        summary.append(
            f"| {model} | {statistics.median(walls):.1f} | {max(walls):.1f} | "
            f"< {AIM_SECONDS} s every run: {verdict} |"
        )
    shown = " ".join(str(s) for s in args.seeds)
    return f"""# The review-based baselines: a demo run's time

Each run is the plain command, one at a time, on data already built (the demo folder is built
before the first run), with the model's YAML defaults and torch's default threads:

    python run_recbole_music.py --model=<CATN|OmniMatch> --dataset={DEMO_DATASET} --seed=<s>

Measured with `python bench/review_models_speed.py --models {",".join(args.models)} --seeds {shown}`
on {date.today()}: {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()},
CPU only, nothing else running. The data is **generated** (synthetic); the RMSE column shows the
runs trained, not how the models do on real data.

{chr(10).join(summary)}

{chr(10).join(lines)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="CATN,OmniMatch")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "review_models_speed.md"))
    args = parser.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    rows = []
    ensure_demo_dataset(
        ROOT / "dataset"
    )  # built when missing, as the main command would; not timed
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for seed in args.seeds:
                rows.append(timed_run(model, seed, Path(tmp)))
                r = rows[-1]
                print(f"{model} seed {seed}: {r['wall']:.1f} s, best epoch {r['best_epoch']}")
    text = report(rows, args)
    write_text_atomic(text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()
