"""Shared fixtures: tiny cross-domain datasets in the atomic format, written in code."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def write_tiny_cross_domain(
    root: Path,
    name: str = "tiny",
    *,
    n_overlap: int = 40,
    n_side: int = 20,
    n_aux_only: int = 10,
    n_aux_items: int = 30,
    n_target_items: int = 25,
    per_user: int = 8,
    explicit: bool = True,
    seed: int = 0,
    reviews: bool = False,
) -> Path:
    """Write ``root/<name>/<name>.inter`` and ``<name>.yaml`` (docs/dataset_format.md).

    Ratings follow a shared hidden taste (one latent dimension for both domains), so a model
    that transfers can beat one that does not. With ``reviews``, ``<name>.review`` holds one
    review per interaction whose words follow the rating and the item's hidden attribute.
    """
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    aux_items = [f"a{i:03d}" for i in range(n_aux_items)]
    target_items = [f"t{i:03d}" for i in range(n_target_items)]
    item_attr = {item: rng.normal() for item in aux_items + target_items}
    rows = []
    users = (
        [(f"o{u:03d}", True, True) for u in range(n_overlap)]
        + [(f"s{u:03d}", False, True) for u in range(n_side)]
        + [(f"x{u:03d}", True, False) for u in range(n_aux_only)]
    )
    for user, in_aux, in_target in users:
        taste = rng.normal()
        for domain, items, active in (
            ("aux", aux_items, in_aux),
            ("target", target_items, in_target),
        ):
            if not active:
                continue
            for t, item in enumerate(rng.choice(items, size=per_user, replace=False)):
                rating = float(
                    np.clip(np.rint(3 + 1.2 * taste * item_attr[item] + rng.normal(0, 0.3)), 1, 5)
                )
                rows.append((user, str(item), rating, float(1000 + t), domain))
    header = ["user_id:token", "item_id:token"]
    if explicit:
        header.append("rating:float")
    header += ["timestamp:float", "domain:token"]
    with open(folder / f"{name}.inter", "w") as out:
        out.write("\t".join(header) + "\n")
        for user, item, rating, ts, domain in rows:
            cells = [user, item] + ([f"{rating:g}"] if explicit else []) + [f"{ts:g}", domain]
            out.write("\t".join(cells) + "\n")
    inter_cols = ["user_id", "item_id"] + (["rating"] if explicit else []) + ["timestamp", "domain"]
    yaml_lines = [
        "USER_ID_FIELD: user_id",
        "ITEM_ID_FIELD: item_id",
        f"RATING_FIELD: {'rating' if explicit else '~'}",
        "TIME_FIELD: timestamp",
        "load_col:",
        f"  inter: [{', '.join(inter_cols)}]",
        f"feedback: {'explicit' if explicit else 'implicit'}",
    ]
    if not explicit:
        yaml_lines.append("valid_metric: NDCG@20")
    (folder / f"{name}.yaml").write_text("\n".join(yaml_lines) + "\n")
    if reviews:
        words = {1: "awful", 2: "poor", 3: "okay", 4: "good", 5: "superb"}
        with open(folder / f"{name}.review", "w") as out:
            out.write("user_id:token\titem_id:token\tdomain:token\ttext:token_seq\n")
            for user, item, rating, _, domain in rows:
                kind = "bright" if item_attr[item] > 0 else "dark"
                text = f"{words[int(rating)]} {kind} {domain} item, really {words[int(rating)]}"
                out.write(f"{user}\t{item}\t{domain}\t{text}\n")
    return folder


@pytest.fixture
def tiny_data_root(tmp_path, monkeypatch):
    """A working dir holding ``dataset/tiny`` (explicit) and ``dataset/tiny_implicit``.

    RecBole's Config reads ``--key=value`` overrides from ``sys.argv``: pytest's own options
    (``--durations=10``) must not leak into the runs, so ``sys.argv`` is emptied here too.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    write_tiny_cross_domain(tmp_path / "dataset", "tiny")
    write_tiny_cross_domain(tmp_path / "dataset", "tiny_implicit", explicit=False)
    return tmp_path / "dataset"


@pytest.fixture
def seq_root(tmp_path, monkeypatch):
    """A working dir holding ``dataset/tiny_seq`` (two-domain sequences, tests/sequence_fixtures.py)."""
    from sequence_fixtures import write_tiny_sequences

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    write_tiny_sequences(tmp_path / "dataset")
    return tmp_path / "dataset"


@pytest.fixture
def restore_root_logger():
    """RecBole's ``init_logger`` may attach a stream and a file handler to the root logger (when
    it has none); detach those after the test. pytest's own capture handlers are left alone."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers and type(handler) in (
            logging.StreamHandler,
            logging.FileHandler,
        ):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def make_config(model: str = "TargetMF", dataset: str = "tiny", **overrides):
    """A RecBole Config of the plugin for ``model`` on ``dataset`` (cwd holds ``dataset/``)."""
    from recbole.config import Config

    import recbole_music
    from recbole_music.registry import PLUGIN_MODELS

    return Config(
        model=PLUGIN_MODELS.get(model, model),
        dataset=dataset,
        config_file_list=recbole_music.config_files(model, dataset),
        config_dict=overrides,
    )


def build_split(model: str = "TargetMF", dataset: str = "tiny", **overrides):
    """(dataset, [train, valid, test]) of the cold-start split of ``dataset``."""
    from recbole_music.data.dataset import CrossDomainDataset

    data = CrossDomainDataset(make_config(model, dataset, **overrides))
    return data, data.build()


def run_bench(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``bench/<script>`` run as a user runs it, one thread, output captured."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, str(root / "bench" / script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=timeout,
    )
