"""Resume after a kill: embed the demo's items, SIGINT the run after K finished shards, rerun.

Runs ``python -m dataset_prep features --dataset movie_music_demo --items`` (default encoder)
in a subprocess with a small shard size, watches the shard cache
``dataset/movie_music_demo/features/.work/items/<fingerprint>/`` and sends SIGINT once K shards
are there (``--signal KILL`` for SIGKILL). The rerun's manifest then says how many rows it
embedded and how many came from the cache; a third run with another pooling shows that the
cached shards of one setting are not used by another.

    python -m dataset_prep demo          # once
    python bench/feature_resume.py [--shard-size 128] [--after 4] [--signal INT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from _grid import write_text_atomic
from _paths import ROOT

from dataset_prep.layout import DEMO_DATASET


def run(cmd, env):
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode:
        print(p.stdout, p.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default=DEMO_DATASET)
    ap.add_argument("--shard-size", type=int, default=128)
    ap.add_argument("--after", type=int, default=4, help="kill after this many shards")
    ap.add_argument("--signal", choices=["INT", "KILL"], default="INT")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/feature_resume.md")
    args = ap.parse_args()
    folder = ROOT / "dataset" / args.dataset
    feats = folder / "features"
    for p in (feats / ".work" / "items",):
        shutil.rmtree(p, ignore_errors=True)
    for ext in ("npy", "ids", "json"):
        (feats / f"items.{ext}").unlink(missing_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    # A background shell starts us with SIGINT ignored, and children inherit that (Python then
    # installs no KeyboardInterrupt handler): give the child the default disposition back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    base = [
        sys.executable,
        "-m",
        "dataset_prep",
        "features",
        "--dataset",
        args.dataset,
        "--items",
        "--shard-size",
        str(args.shard_size),
        "--no-progress",
        "--threads",
        str(args.threads),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        base, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    shards: list[Path] = []
    while proc.poll() is None:
        shards = sorted((feats / ".work" / "items").glob("*/shard_*.npz"))
        if len(shards) >= args.after:
            proc.send_signal(signal.SIGINT if args.signal == "INT" else signal.SIGKILL)
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    first_s = time.perf_counter() - t0
    shards = sorted((feats / ".work" / "items").glob("*/shard_*.npz"))
    if (feats / "items.json").exists():
        raise SystemExit(
            f"the first run finished before it was killed (exit {proc.returncode}, "
            f"{len(shards)} shards seen)\n{out}\n{err[-2000:]}"
        )
    second_s = run(base, env)
    m = json.loads((feats / "items.json").read_text())
    third_s = run(base + ["--pooling", "mean"], env)
    m3 = json.loads((feats / "items.json").read_text())
    rows = m["counts"]["rows_in_dataset"]
    lines = [
        "# Feature extraction: resume after an interrupted run",
        "",
        f"Command: `python bench/feature_resume.py --shard-size {args.shard_size} --after "
        f"{args.after} --signal {args.signal}` (demo items, default encoder, "
        f"{args.threads} thread; the demo is GENERATED data)",
        "",
        "| run | what happened | rows embedded | rows from cache | seconds |",
        "|---|---|---|---|---|",
        f"| 1 | SIG{args.signal} after {args.after} shards of {args.shard_size} were cached "
        f"(exit {proc.returncode}; {len(shards)} shard files left) | "
        f"{len(shards) * args.shard_size} | 0 | {first_s:.1f} |",
        f"| 2 | same command again | {m['run']['rows_embedded']} | "
        f"{m['run']['rows_from_cache']} | {second_s:.1f} |",
        f"| 3 | `--pooling mean` (another fingerprint) | {m3['run']['rows_embedded']} | "
        f"{m3['run']['rows_from_cache']} | {third_s:.1f} |",
        "",
        f"The table has {rows} items. Run 2 embedded only the rows that run 1 had not cached "
        f"({rows} − {len(shards)} × {args.shard_size} = {rows - len(shards) * args.shard_size}); "
        "run 3 (other settings) reused nothing. Run 1's last words: "
        f"`{(out.strip().splitlines() or err.strip().splitlines() or [''])[-1][:160]}`",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic("\n".join(lines), args.out)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
