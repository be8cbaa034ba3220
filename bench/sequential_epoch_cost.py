"""What one training step of each sequential model costs under each training objective.

    python bench/sequential_epoch_cost.py                     # Food–Kitchen, writes the table below
    python bench/sequential_epoch_cost.py --batches 3 --out /tmp/x.md

For LLMEMF, SASRec and GRU4Rec on one split of ``--dataset`` (the settings of
``bench/llmemf_food_kitchen.py``): RecBole's own ``calculate_loss`` (SASRec/GRU4Rec: softmax over
every item), the plugin's domain softmax (``sequential_softmax: domain``), and its sampled
version (``sequential_negatives: K``). Each cell times ``--batches`` optimizer steps (forward,
backward, Adam) after one warm-up step; the objectives of a model are timed interleaved, step by
step, so machine noise hits them alike; the table gives the median step and the estimated epoch
(median × batches per epoch). Needs the data set (skips when it is absent).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _grid import write_text_atomic
from _paths import ROOT

MODELS = ("GRU4Rec", "SASRec", "LLMEMF")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="food_kitchen")
    p.add_argument("--negatives", type=int, default=1024)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "sequential_epoch_cost.md"))
    return p.parse_args(argv)


def build(model_name, dataset, extra):
    from recbole.config import Config
    from recbole.utils import init_seed

    import recbole_music
    from recbole_music.quick_start import build_run, resolve_model

    model_class = resolve_model(model_name)
    config = Config(
        model=model_class,
        dataset=dataset,
        config_file_list=recbole_music.config_files(model_name, dataset),
        config_dict={
            "state": "ERROR",
            "MAX_ITEM_LIST_LENGTH": 15,
            "train_batch_size": 1024,
            "seq_train_roles": ["overlap"],
            "hidden_size": 64,
            "embedding_size": 64,
            "seed": 2020,
            **extra,
        },
    )
    init_seed(2020, True)
    train_data, _, _, model, trainer = build_run(config, model_class)
    return train_data, model, trainer


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (ROOT / "dataset" / args.dataset / f"{args.dataset}.inter").is_file():
        print(f"skipped: dataset/{args.dataset} is absent (docs/llmemf.md: the build command)")
        return 0
    sys.argv = sys.argv[:1]
    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    objectives = {
        "RecBole's own loss": {},
        "domain softmax": {"sequential_negatives": 0},
        f"sampled domain softmax, K = {args.negatives}": {"sequential_negatives": args.negatives},
    }
    rows = [
        "| model | objective | loss it trained with | median step (s) | est. epoch (s) | "
        "epoch / RecBole's loss |",
        "|---|---|---|---:|---:|---:|",
    ]
    for model_name in MODELS:
        cells = {}
        for name, extra in objectives.items():
            train_data, model, trainer = build(model_name, args.dataset, extra)
            own = name == "RecBole's own loss"
            loss = model.calculate_loss if own else trainer.objective.loss
            described = "the model's calculate_loss" if own else trainer.objective.description
            optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
            batches = iter(train_data)
            cells[name] = dict(
                loss=loss,
                optimizer=optimizer,
                batches=batches,
                times=[],
                described=described,
                per_epoch=len(train_data),
                model=model,
            )
        for step in range(args.batches + 1):  # interleaved: one step of each objective in turn
            for cell in cells.values():
                batch = next(cell["batches"])
                start = time.perf_counter()
                value = cell["loss"](batch)
                cell["optimizer"].zero_grad()
                value.backward()
                cell["optimizer"].step()
                if step > 0:  # the first step warms up
                    cell["times"].append(time.perf_counter() - start)
        base = None
        for name, cell in cells.items():
            median = statistics.median(cell["times"])
            epoch = median * cell["per_epoch"]
            base = base or epoch
            rows.append(
                f"| {model_name} | {name} | {cell['described']} | {median:.3f} | {epoch:.0f} | "
                f"{epoch / base:.2f} |"
            )
            print(rows[-1], flush=True)
    text = "\n".join(
        [
            f"# Training step cost of the sequential models on {args.dataset}, per objective",
            "",
            *rows,
            "",
            f"- {args.batches} timed steps per cell after one warm-up, batch 1024, sequences of "
            f"the last 15 items, width 64, training sequences of the overlapping users, "
            f"{args.threads} CPU thread(s); the objectives of one model timed interleaved. "
            "Epoch = median step × batches per epoch (no evaluation).",
            "- RecBole's own loss: SASRec and GRU4Rec's cross-entropy over every item (padding "
            "included) for every example; for LLMEMF it is its calculate_loss, i.e. the domain "
            "softmax with the settings' defaults (the same objective as the next row).",
            "- What is left when the output layer is sampled is the sequence encoders' cost.",
            "- Absolute seconds depend on the machine's load (a shared 2-core machine); the "
            "ratios, measured interleaved, are the comparable numbers.",
            f"- Command: `python bench/sequential_epoch_cost.py --dataset {args.dataset} "
            f"--negatives {args.negatives} --batches {args.batches} --threads {args.threads}`.",
            "",
        ]
    )
    write_text_atomic(text, Path(args.out))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
