"""A task = one dataset folder: found, or built first (the GENERATED demo, the real
food/kitchen data in either direction), with its feedback, metrics and features."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from _grid import (
    ROOT,
    dataset_info,
)

from dataset_prep.layout import (
    DEMO_DATASET,
    FEATURES_FOLDER,
    ITEMS_TABLE,
    USER_TABLES,
    has_review_text,
    review_file,
)

from .catalogue import EXPLICIT_ONLY, METRICS, REVIEW_BASED

SHARED_DATA = ROOT.parent / "shared" / "data"
# MuSiC's multimodal features need the items table; user vectors come from the review tables
# (USER_TABLES, one per domain) when present, else from each user's history (user_vectors: auto).
MULTIMODAL_TABLES = (ITEMS_TABLE,)


@dataclass(frozen=True)
class RealSource:
    """A task built from one interactions file holding both domains (``--*-where`` splits it)."""

    folder: str  # under the shared data folder
    aux: str
    target: str
    interactions: str = "interactions.tsv"
    items: str = "items.tsv"


REAL_TASKS = {
    "food_kitchen": RealSource("food_kitchen", aux="food", target="kitchen"),
    "kitchen_food": RealSource("food_kitchen", aux="kitchen", target="food"),
}


@dataclass
class Task:
    name: str  # = the dataset folder name
    folder: Path
    info: dict
    feedback: str
    metrics: list[str]
    has_features: bool
    has_review_vectors: bool = False
    notes: list[str] = field(default_factory=list)


def _run_prep(argv: list[str], cwd: Path) -> None:
    command = [sys.executable, "-m", "dataset_prep", *argv]
    print("  $ python -m dataset_prep " + shlex.join(argv), flush=True)
    done = subprocess.run(command, cwd=str(cwd), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError((done.stderr or done.stdout)[-3000:])


def build_real(name: str, source: RealSource, data_root: Path, shared: Path) -> None:
    raw = Path(os.path.relpath(shared / source.folder, ROOT))  # the build record keeps it as given
    inter, items = raw / source.interactions, raw / source.items
    _run_prep(
        [
            "build", "--name", name, "--out", str(data_root), "--no-progress",
            "--aux", str(inter), "--aux-meta", str(items), "--aux-where", f"domain={source.aux}",
            "--target", str(inter), "--target-meta", str(items),
            "--target-where", f"domain={source.target}",
        ],
        ROOT,
    )  # fmt: skip


def prepare_task(name: str, args) -> Task | None:
    """The task's dataset folder, built first when it is missing and its raw data is there;
    None (and a message saying why) when the task cannot run."""
    data_root = Path(args.cwd) / "dataset"
    folder = data_root / name
    if not (folder / f"{name}.inter").is_file():
        if args.report_only:
            print(f"skip task {name}: no dataset folder {folder} (--report-only builds nothing)")
            return None
        try:
            if name == DEMO_DATASET:
                print(f"{name}: building the GENERATED demo dataset into {folder}", flush=True)
                _run_prep(["demo", "--out", str(data_root), "--no-progress"], ROOT)
            elif name in REAL_TASKS:
                source = REAL_TASKS[name]
                raw = Path(args.shared_data) / source.folder
                if not all((raw / f).is_file() for f in (source.interactions, source.items)):
                    print(
                        f"skip task {name}: its raw data is absent ({raw}/{source.interactions} "
                        f"and {source.items}); see ../shared/data/README.md"
                    )
                    return None
                print(f"{name}: building {source.aux} → {source.target} from {raw}", flush=True)
                build_real(name, source, data_root, Path(args.shared_data))
            else:
                print(
                    f"skip task {name}: no dataset folder {folder} "
                    f"(build it with `python -m dataset_prep build --name {name} ...`)"
                )
                return None
        except RuntimeError as error:
            print(f"skip task {name}: building its dataset failed:\n{error}")
            return None
    info = dataset_info(folder)
    feedback = info["feedback"] if info["feedback"] in METRICS else "explicit"
    metrics = args.metrics or METRICS[feedback]
    features = folder / FEATURES_FOLDER
    has_features = all((features / f"{t}.json").is_file() for t in MULTIMODAL_TABLES)
    has_reviews = all((features / f"{t}.json").is_file() for t in USER_TABLES)
    return Task(name, folder, info, feedback, metrics, has_features, has_reviews)


def select_models(task: Task, args) -> list[str]:

    chosen = []
    for model in args.models:
        if model in EXPLICIT_ONLY and task.feedback != "explicit":
            print(
                f"{task.name}: skip {model} (predicts ratings only; this task is {task.feedback})"
            )
            task.notes.append(f"{model} skipped: it predicts ratings only, this data is implicit.")
            continue
        if model in REVIEW_BASED and not has_review_text(review_file(task.folder, task.name)):
            print(f"{task.name}: {model} not applicable (the data has no review text)")
            task.notes.append(f"{model}: not applicable, the data has no review text.")
            continue
        chosen.append(model)
    return chosen
