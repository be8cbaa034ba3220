"""MuSiC at the paper's data size on this machine: time and peak memory of every step.

The MuSiC paper's largest task, Book → Movie (its Table 1: 53,442 auxiliary and 18,045 target
users, 3,545 of them in both; 674,378 + 156,884 items; 2.77M + 0.88M ratings), is GENERATED
with the demo's generator (``dataset_prep/demo.py``: those user and item counts, two domains'
worth of reviews per user, images linked by URL, the ``grouped`` sampler that draws a user's
items without a pass over 674k items) in the Amazon-2023 layout, then each step runs in its own
subprocess, so its peak memory is its own:

* ``generate`` — the raw files (cached; not timed against anything);
* ``build`` — ``dataset_prep``'s build with the paper's filters;
* ``vectors`` — 4,096-dim float32 tables for every item and for both user tables (random: the
  bench times what MuSiC does with an MLLM's vectors, not the MLLM), via ``save_vectors``;
* ``load`` — the item table loaded and aligned to the dataset's ids;
* ``music`` — MuSiC on those vectors (``feature_source: multimodal``, ``user_vectors: reviews``):
  one stage-1 epoch, one stage-2 epoch, full-ranking evaluation of every cold-start test user,
  and new-user recommendations for 10,000 users from their auxiliary review vectors;
* ``bpr``, ``mapping`` — one training epoch of BPR and of LACDR (the mapping baseline with the
  best RMSE on real explicit data), and one epoch of LACDR's two base MFs (a run trains
  ``base_mf_epochs`` of them first).

Every step's result is cached under ``--work`` (an interrupted bench resumes; ``--redo STEP``
reruns one); the table goes to ``--out``. ``--scale`` multiplies every count (0.01 for a smoke
run). Disk: ~17 GB at scale 1 (the float32 tables); memory: see the table.

    python bench/paper_scale.py                       # the paper's size (hours on 2 cores)
    python bench/paper_scale.py --scale 0.01 --work bench/_work/paper_scale_smoke \\
        --out bench/_work/paper_scale_smoke/paper_scale.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from _grid import write_text_atomic
from _paths import ROOT

# The paper's Table 1, Task 2 (Book -> Movie)
PAPER_USERS = {"overlap": 3_545, "aux": 53_442, "target": 18_045}
PAPER_ITEMS = {"aux": 674_378, "target": 156_884}
PAPER_RATINGS = {"aux": 2_772_516, "target": 881_003}
# The demo's users write ~26 reviews per domain at activity 1; the paper's ~50
ACTIVITY = 2.0
VECTOR_DIM = 4096
NEW_USERS = 10_000
DATASET = "paper_scale_book_movie"
STEPS = ("generate", "build", "vectors", "load", "music", "bpr", "mapping")
MAPPING_BASELINE = "LACDR"


def counts(scale: float) -> tuple[tuple[int, int, int], tuple[int, int]]:
    """(overlap, side, auxiliary-only) users and (auxiliary, target) items at ``scale``."""
    overlap = PAPER_USERS["overlap"]
    users = (overlap, PAPER_USERS["target"] - overlap, PAPER_USERS["aux"] - overlap)
    scaled = tuple(max(20, round(n * scale)) for n in users)
    items = tuple(max(200, round(PAPER_ITEMS[d] * scale)) for d in ("aux", "target"))
    return scaled, items


def peak_mib() -> float:
    """This process's peak resident memory (Linux: VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- the steps, each run in a child process ---------------------------------------------------


def step_generate(args) -> dict:
    work, scale = args.work, args.scale
    from dataset_prep.demo import generate_demo_raw

    users, items = counts(scale)
    summary = generate_demo_raw(
        work / "raw",
        seed=0,
        activity=ACTIVITY,
        images=False,
        users=users,
        items=items,
        sampler="grouped",
    )
    return {"reviews": summary["reviews"], "items": summary["items"], "users": summary["users"]}


def step_build(args) -> dict:
    work = args.work
    from dataset_prep.builder import DomainSource, build_dataset
    from dataset_prep.demo_vocabulary import AUX_CATEGORY, TARGET_CATEGORY
    from dataset_prep.filters import PAPER_FILTERS

    raw = work / "raw"
    source = {
        c: DomainSource(raw / f"{c}.jsonl.gz", raw / f"meta_{c}.jsonl.gz")
        for c in (AUX_CATEGORY, TARGET_CATEGORY)
    }
    result = build_dataset(
        DATASET,
        source[AUX_CATEGORY],
        source[TARGET_CATEGORY],
        out_root=work / "dataset",
        filters=PAPER_FILTERS,
        generated=True,
        show_progress=False,
    )
    return {"stats": json.loads((result.path / "stats.json").read_text())}


def _tokens(folder: Path, suffix: str, column: int) -> list[str]:
    with open(folder / f"{DATASET}.{suffix}", encoding="utf-8") as handle:
        next(handle)
        return sorted({line.split("\t")[column] for line in handle})


def step_vectors(args) -> dict:
    """Random float32 tables, written block by block into the table's own ``.npy``."""
    work = args.work
    import numpy as np

    from dataset_prep.vector_table import save_vectors

    folder = work / "dataset" / DATASET
    rng = np.random.default_rng(0)
    rows = {}
    tables = {
        "items": _tokens(folder, "item", 0),
        "users_aux": _tokens(folder, "inter", 0),
        "users_target": _tokens(folder, "inter", 0),
    }
    for name, ids in tables.items():
        vectors = np.empty((len(ids), VECTOR_DIM), dtype=np.float32)
        for lo in range(0, len(ids), 65_536):
            block = rng.standard_normal((min(65_536, len(ids) - lo), VECTOR_DIM), np.float32)
            vectors[lo : lo + len(block)] = block
        save_vectors(folder / "features", name, ids, vectors, {"model": "random (paper_scale)"})
        rows[name] = len(ids)
        del vectors
    return {"rows": rows, "dim": VECTOR_DIM}


def _config(work: Path, model: str, **overrides):
    from recbole.config import Config

    import recbole_music
    from recbole_music.quick_start import resolve_model

    data_path = work / "dataset"
    model_class = resolve_model(model)
    config = Config(
        model=model_class,
        dataset=DATASET,
        config_file_list=recbole_music.config_files(model, DATASET, data_path),
        config_dict={
            "state": "ERROR",
            "data_path": str(data_path),
            "show_progress": False,
            "checkpoint_dir": str(work / "saved"),
            **overrides,
        },
    )
    return config, model_class


def step_load(args) -> dict:
    import torch

    from recbole_music.data.dataset import CrossDomainDataset

    work = args.work
    config, _ = _config(work, "BPR")
    dataset = CrossDomainDataset(config)
    start = time.perf_counter()
    dtype = getattr(torch, args.vector_dtype)
    vectors, present = dataset.load_features("items", "item_id", dtype)
    return {
        "seconds": time.perf_counter() - start,
        "shape": list(vectors.shape),
        "items_with_vectors": int(present.sum()),
    }


def _built(work: Path, model: str, **overrides):
    from recbole.utils import init_seed

    from recbole_music.quick_start import build_run

    config, model_class = _config(work, model, **overrides)
    init_seed(config["seed"], True)
    start = time.perf_counter()
    train_data, _, test_set, model_obj, trainer = build_run(config, model_class)
    return train_data, test_set, model_obj, trainer, time.perf_counter() - start


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def step_music(args) -> dict:
    work = args.work
    import torch

    from recbole_music.inference import ColdStartRecommender

    train_data, test_set, model, trainer, setup = _built(
        work,
        "MuSiC",
        feature_source="multimodal",
        user_vectors="reviews",
        vector_dtype=args.vector_dtype,
    )
    out = {"setup_seconds": setup, "setup_peak_mib": peak_mib()}
    dataset = train_data._dataset
    side_rows, joint_rows = trainer.stage_rows(dataset)
    side = trainer._stage_loader(dataset, side_rows)
    joint = trainer._stage_loader(dataset, joint_rows)
    stage2_optimizer = trainer.optimizer
    trainer.optimizer = trainer.stage1_optimizer()
    out["stage1_epoch_seconds"] = _timed(trainer._train_epoch, side, 0, model.side_user_loss)
    trainer.optimizer = stage2_optimizer
    trainer._start_weight_average()
    out["stage2_epoch_seconds"] = _timed(trainer._train_epoch, joint, 0, None)
    out["stage_rows"] = [len(side_rows), len(joint_rows)]
    start = time.perf_counter()
    result = trainer.evaluate(test_set, load_best_model=False)
    out["evaluate_seconds"] = time.perf_counter() - start
    out["test_users"] = int(model.is_held_out.sum())  # validation users included
    out["test_result"] = {k: round(float(v), 4) for k, v in result.items()}
    # new users: a review vector each (as the LLM would give), through the model's own path
    model.eval()
    recommender = ColdStartRecommender(model, dataset)
    generator = torch.Generator().manual_seed(0)
    reviews = torch.randn(args.new_users, VECTOR_DIM, generator=generator)
    start = time.perf_counter()
    with torch.no_grad():
        for vector in reviews:
            recommender.recommend(model.features.user_mlp(vector[None])[0], topk=10)
    out["new_users"] = args.new_users
    out["new_user_seconds"] = time.perf_counter() - start
    return out


def step_bpr(args) -> dict:
    work = args.work
    train_data, _, _, trainer, setup = _built(work, "BPR")
    return {"setup_seconds": setup, "epoch_seconds": _timed(trainer._train_epoch, train_data, 0)}


def step_mapping(args) -> dict:
    from recbole_music.config import setting

    work = args.work
    # one epoch of each domain's base MF (a run trains base_mf_epochs of them), not cached
    train_data, _, model, trainer, setup = _built(
        work, MAPPING_BASELINE, base_mf_epochs=1, base_mf_cache=False
    )
    dataset = train_data._dataset
    base_seconds = _timed(trainer.prepare_base, dataset)
    stage = trainer._stage_loader(dataset, model.stage_rows(dataset))
    return {
        "model": MAPPING_BASELINE,
        "setup_seconds": setup,
        "base_mf_epoch_seconds": base_seconds,
        "base_mf_epochs_in_a_run": setting(_config(work, MAPPING_BASELINE)[0], "base_mf_epochs"),
        "epoch_seconds": _timed(trainer._train_epoch, stage, 0),
    }


STEP_FUNCTIONS = {
    "generate": step_generate,
    "build": step_build,
    "vectors": step_vectors,
    "load": step_load,
    "music": step_music,
    "bpr": step_bpr,
    "mapping": step_mapping,
}


def child(step: str, args, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    sys.argv = sys.argv[:1]  # RecBole reads the command line
    start = time.perf_counter()
    result = STEP_FUNCTIONS[step](args)
    result["wall_seconds"] = time.perf_counter() - start
    result["peak_mib"] = peak_mib()
    print(json.dumps(result))


# --- the driver -------------------------------------------------------------------------------


def cache_file(step: str, args) -> Path:
    # the steps that hold the vectors in memory are cached per precision
    key = f"{step}-{args.vector_dtype}" if step in ("load", "music") else step
    return args.work / "results" / f"{key}.json"


def run_step(step: str, args) -> dict:
    """The step in a child process; its JSON result, cached under ``--work``."""
    cache = cache_file(step, args)
    if cache.is_file() and step not in args.redo:
        return json.loads(cache.read_text())
    print(f"[paper_scale] {step} ...", flush=True)
    command = [sys.executable, __file__, "--child", step, "--work", str(args.work)]
    command += ["--scale", str(args.scale), "--threads", str(args.threads)]
    command += ["--new-users", str(args.new_users), "--vector-dtype", args.vector_dtype]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if done.returncode < 0:  # the kernel's OOM killer sends SIGKILL
        return {"failed": f"killed by signal {-done.returncode} (9: most likely out of memory)"}
    if done.returncode:
        return {"failed": f"exit code {done.returncode} (see the output above)"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    write_text_atomic(json.dumps(result, indent=2), cache)
    return result


def _row(what: str, seconds, peak, note: str = "") -> str:
    s = "—" if seconds is None else f"{seconds:,.1f}"
    p = "—" if peak is None else f"{peak / 1024:,.2f}"
    return f"| {what} | {s} | {p} | {note} |"


def report(results: dict, args) -> str:
    users, items = counts(args.scale)
    rows = []
    for step in STEPS:
        r = results.get(step, {})
        if "failed" in r:
            rows.append(_row(step, None, None, f"**failed**: {r['failed']}"))
            continue
        peak = r.get("peak_mib")
        if step == "generate":
            rows.append(_row("generate the raw files", r.get("wall_seconds"), peak))
        elif step == "build":
            rows.append(_row("build (paper filters)", r.get("wall_seconds"), peak))
        elif step == "vectors":
            note = f"{r.get('rows')} × {r.get('dim')}"
            rows.append(_row("write the 4,096-dim tables", r.get("wall_seconds"), peak, note))
        elif step == "load":
            note = f"shape {r.get('shape')}"
            rows.append(_row("load + align the item table", r.get("seconds"), peak, note))
        elif step == "music":
            rows += [
                _row(
                    "MuSiC: dataset, split, model", r.get("setup_seconds"), r.get("setup_peak_mib")
                ),
                _row("MuSiC: one stage-1 epoch", r.get("stage1_epoch_seconds"), None),
                _row("MuSiC: one stage-2 epoch", r.get("stage2_epoch_seconds"), None),
                _row(
                    "MuSiC: full-ranking evaluation",
                    r.get("evaluate_seconds"),
                    None,
                    f"{r.get('test_users')} held-out users",
                ),
                _row(
                    f"MuSiC: recommend for {r.get('new_users', 0):,} new users, one by one",
                    r.get("new_user_seconds"),
                    peak,
                    "peak of the whole MuSiC process",
                ),
            ]
        elif step in ("bpr", "mapping"):
            name = "BPR" if step == "bpr" else r.get("model", MAPPING_BASELINE)
            rows.append(_row(f"{name}: dataset, split, model", r.get("setup_seconds"), None))
            if step == "mapping":
                note = f"a run trains {r.get('base_mf_epochs_in_a_run')} of them"
                what = f"{name}: one epoch of both domains' base MFs"
                rows.append(_row(what, r.get("base_mf_epoch_seconds"), None, note))
            rows.append(_row(f"{name}: one epoch", r.get("epoch_seconds"), peak))
    stats = results.get("build", {}).get("stats", {})
    domains = stats.get("domains", {})
    built = ", ".join(
        f"{d.get('name')}: {d.get('users'):,} users, {d.get('items'):,} items, "
        f"{d.get('interactions'):,} ratings"
        for d in (domains.get("aux", {}), domains.get("target", {}))
        if d
    )
    overlap = stats.get("users", {}).get("overlap")
    return f"""# MuSiC at the paper's data size (Book → Movie shape, GENERATED data)

`python bench/paper_scale.py --scale {args.scale} --threads {args.threads} --new-users {args.new_users} --vector-dtype {args.vector_dtype}`
on {date.today()},
CPU only, {os.cpu_count()} cores, Python {platform.python_version()}. GENERATED data with the
paper's Task 2 shape (Table 1) at scale {args.scale}: users (overlap, side, auxiliary-only) =
{users}, items (auxiliary, target) = {items}. Built with the paper's filters: {built}; {overlap}
users in both. The paper's: {PAPER_USERS["aux"]:,} + {PAPER_USERS["target"]:,} users
({PAPER_USERS["overlap"]:,} in both), {PAPER_ITEMS["aux"]:,} + {PAPER_ITEMS["target"]:,} items,
{PAPER_RATINGS["aux"]:,} + {PAPER_RATINGS["target"]:,} ratings.
Item and user vectors: random 4,096-dim float32 tables on disk (the bench times what MuSiC
does with an MLLM's vectors), held in memory as {args.vector_dtype}. Each step in its own process; peak = that process's resident peak.

| step | seconds | peak GiB | note |
|---|---:|---:|---|
{chr(10).join(rows)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "_work" / "paper_scale")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "paper_scale.md")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--new-users", type=int, default=NEW_USERS)
    parser.add_argument(
        "--vector-dtype",
        default="float32",
        choices=("float32", "float16"),
        help="the frozen vectors' precision in memory (MuSiC's vector_dtype; the load step's)",
    )
    parser.add_argument("--redo", nargs="*", default=[], choices=STEPS)
    parser.add_argument("--only", nargs="*", default=list(STEPS), choices=STEPS)
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work = args.work.resolve()
    if args.child:
        child(args.child, args, args.threads)
        return
    results = {}
    for step in STEPS:
        if step in args.only:
            results[step] = run_step(step, args)
            if "failed" in results[step] and step in ("generate", "build", "vectors"):
                break  # the later steps need this one
        elif (cached := cache_file(step, args)).is_file():
            results[step] = json.loads(cached.read_text())  # in the table, not rerun
    text = report(results, args)
    write_text_atomic(text, args.out)
    print(text)


if __name__ == "__main__":
    main()
