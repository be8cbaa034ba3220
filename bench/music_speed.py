"""MuSiC's training time per epoch and cold-start inference for 10,000 users, beside BPR.

Both models are built on the same dataset, split and config in one process, and timed
interleaved (MuSiC epoch, BPR epoch, ...) so machine noise hits both alike; medians are quoted
and the ratio MuSiC / BPR. Inference: MuSiC generates u_T for 10,000 cold-start users (T
reverse diffusion steps conditioned on u_A) and scores every target item; BPR scores every item
for 10,000 users with its ``full_sort_predict``.

    python bench/music_speed.py --dataset movie_music_demo [--epochs 5] [--steps 10] [--threads 1]
    python bench/music_speed.py --dataset food_kitchen --out bench/results/music_speed_food_kitchen.md
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch
from _grid import write_text_atomic
from _paths import ROOT

from dataset_prep.layout import DEMO_DATASET


def build(model_name, dataset, overrides):
    from recbole.config import Config
    from recbole.utils import init_seed

    import recbole_music
    from recbole_music.quick_start import build_run, resolve_model

    model_class = resolve_model(model_name)
    config = Config(
        model=model_class,
        dataset=dataset,
        config_file_list=recbole_music.config_files(model_name, dataset),
        config_dict={"state": "ERROR", **overrides},
    )
    init_seed(config["seed"], True)
    train_data, _, _, model, trainer = build_run(config, model_class)
    return model, trainer, train_data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default=DEMO_DATASET)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="diffusion steps T")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: the ratio is not thread noise)"
    )
    parser.add_argument(
        "--shared-by",
        type=int,
        nargs="*",
        default=[8, 16],
        help="negatives_shared_by values timed beside the defaults (implicit data)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "music_speed.md"))
    args = parser.parse_args()
    sys.argv = sys.argv[:1]
    torch.set_num_threads(args.threads)

    music, music_trainer, train_data = build("MuSiC", args.dataset, {"diffusion_steps": args.steps})
    # the same model with the generated-rating loss backpropagated through the last reverse step
    # only (generated_rating_grad_steps, DRaFT-K's truncation), timed beside the defaults
    truncated, truncated_trainer, _ = build(
        "MuSiC", args.dataset, {"diffusion_steps": args.steps, "generated_rating_grad_steps": 1}
    )
    bpr, bpr_trainer, bpr_data = build("BPR", args.dataset, {})
    side_rows, joint_rows = music_trainer.stage_rows(train_data._dataset)
    side = music_trainer._stage_loader(train_data._dataset, side_rows)
    joint = music_trainer._stage_loader(train_data._dataset, joint_rows)

    # each stage with its own optimizer, as MuSiCTrainer.fit runs them; stage 2's steps also
    # update the weight average (ema_decay)
    stage2_optimizer = music_trainer.optimizer
    music_trainer._start_weight_average()
    truncated_trainer._start_weight_average()
    optimizers = {
        "MuSiC stage 1 epoch": music_trainer.stage1_optimizer(),
        "MuSiC stage 2 epoch": stage2_optimizer,
    }
    stage2_truncated = "MuSiC stage 2 epoch, generated_rating_grad_steps=1"
    # the step's features projected by every loss term for itself, as before
    # FeatureSource.projected_once: what that saves, measured beside it
    stage2_apart = "MuSiC stage 2 epoch, each loss term projecting its own features"
    optimizers[stage2_apart] = stage2_optimizer
    # rows of a batch sharing their draw of negatives (negatives_shared_by), the same model
    shared = (
        {}
        if music.explicit
        else {f"MuSiC stage 2 epoch, negatives_shared_by={g}": g for g in args.shared_by}
    )
    optimizers.update({label: stage2_optimizer for label in shared})
    own_draws = music.negatives_shared_by
    # the other value of loss_terms_share, the same model
    own_sharing = music.shares_step
    other_sharing = "first_layer" if own_sharing else "step"
    sharing_label = f"MuSiC stage 2 epoch, loss_terms_share={other_sharing}"
    optimizers[sharing_label] = stage2_optimizer
    # the same model with its diffusion terms off (use_diffusion): what the rating terms and
    # the projections cost alone, the floor of any stage 2 with diffusion
    no_diffusion = "MuSiC stage 2 epoch without the diffusion terms (rating terms only)"
    optimizers[no_diffusion] = stage2_optimizer
    own_diffusion = music.use_diffusion
    times = {label: [] for label in (*optimizers, stage2_truncated, "BPR epoch")}
    one_projection = music.features.projected_once
    for epoch in range(args.epochs):
        for label, trainer, data, loss in (
            ("MuSiC stage 1 epoch", music_trainer, side, music.side_user_loss),
            ("MuSiC stage 2 epoch", music_trainer, joint, None),
            (stage2_apart, music_trainer, joint, None),
            *((label, music_trainer, joint, None) for label in shared),
            (sharing_label, music_trainer, joint, None),
            (no_diffusion, music_trainer, joint, None),
            (stage2_truncated, truncated_trainer, joint, None),
            ("BPR epoch", bpr_trainer, bpr_data, None),
        ):
            if label in optimizers:
                trainer.optimizer = optimizers[label]
            music.features.projected_once = (
                (lambda **_: contextlib.nullcontext()) if label == stage2_apart else one_projection
            )
            music.negatives_shared_by = shared.get(label, own_draws)
            music.features.shares_step = (
                (not own_sharing) if label == sharing_label else own_sharing
            )
            music.use_diffusion = own_diffusion and label != no_diffusion
            start = time.perf_counter()
            trainer._train_epoch(data, epoch, loss)
            times[label].append(time.perf_counter() - start)
    music.features.projected_once = one_projection
    music.negatives_shared_by = own_draws
    music.features.shares_step = own_sharing
    music.use_diffusion = own_diffusion

    generator = torch.Generator().manual_seed(0)
    users = torch.randint(1, music.n_users, (args.users,), generator=generator)
    target_items = torch.nonzero(music.target_item_mask).flatten()
    music.eval()
    bpr.eval()
    infer = {"MuSiC: generate u_T + score target items": [], "BPR: full_sort_predict": []}
    from recbole.data.interaction import Interaction

    for _ in range(3):
        with torch.no_grad():
            start = time.perf_counter()
            cond = music.features.users_aux(users)
            x_T = torch.randn(cond.shape, generator=generator)
            u_t = music.generate(cond, x_T=x_T, generator=generator)
            scores = u_t @ music.features.items(target_items).T
            infer["MuSiC: generate u_T + score target items"].append(time.perf_counter() - start)
            start = time.perf_counter()
            for chunk in users.split(4096):
                bpr.full_sort_predict(Interaction({"user_id": chunk}))
            infer["BPR: full_sort_predict"].append(time.perf_counter() - start)
    assert scores.shape == (args.users, len(target_items))

    def med(values):
        return statistics.median(values)

    train_ratio = med(times["MuSiC stage 2 epoch"]) / med(times["BPR epoch"])
    apart_ratio = med(times[stage2_apart]) / med(times["BPR epoch"])
    truncated_ratio = med(times[stage2_truncated]) / med(times["BPR epoch"])
    shared_lines = "".join(
        f"\n- stage 2 with `negatives_shared_by={g}`: **{med(times[label]) / med(times['BPR epoch']):.2f}×**"
        " a BPR epoch (same model and data; quality is a separate, validation-chosen question)."
        for label, g in shared.items()
    )
    sharing_ratio = med(times[sharing_label]) / med(times["BPR epoch"])
    floor_ratio = med(times[no_diffusion]) / med(times["BPR epoch"])
    infer_ratio = med(infer["MuSiC: generate u_T + score target items"]) / med(
        infer["BPR: full_sort_predict"]
    )
    rows = "\n".join(
        f"| {k} | {med(v):.3f} | {min(v):.3f} | {max(v):.3f} | {len(v)} |"
        for k, v in {**times, **infer}.items()
    )
    report = f"""# MuSiC speed beside BPR (same data, same process)

`python bench/music_speed.py --dataset {args.dataset} --epochs {args.epochs} --steps {args.steps}
--users {args.users} --threads {args.threads}` on {date.today()}: {torch.get_num_threads()} torch threads, CPU only,
Python {platform.python_version()}, feature_source={music.feature_source}, T={args.steps}; stage 2's
epochs include the weight-average update after every step (ema_decay={music_trainer.config["ema_decay"]}).
Interleaved measurements (machine shared: medians).

| what | median s | min s | max s | n |
|---|---:|---:|---:|---:|
{rows}

- training: MuSiC stage-2 epoch / BPR epoch = **{train_ratio:.2f}×** at the defaults,
  **{truncated_ratio:.2f}×** with `generated_rating_grad_steps=1`, and {apart_ratio:.2f}× with
  every loss term of a step projecting its own features (the code before one projection per
  step and table). Stage 1 runs only over side users' interactions; stage 2 over
  training-overlap users' target and all auxiliary ones; BPR over all training interactions.
- stage 2 with `loss_terms_share={other_sharing}` (the defaults have
  `{"step" if own_sharing else "first_layer"}`): **{sharing_ratio:.2f}×** a BPR epoch.{shared_lines}
- stage 2 without its diffusion terms (the conditional diffusion loss and the generated-rating
  loss; the target and auxiliary rating terms and their projections remain): **{floor_ratio:.2f}×**
  a BPR epoch, the floor under any stage 2 that trains the diffusion.
- cold-start inference for {args.users:,} users at T={args.steps}: MuSiC / BPR = **{infer_ratio:.2f}×**.
"""
    write_text_atomic(report, Path(args.out))
    print(report)


if __name__ == "__main__":
    main()
