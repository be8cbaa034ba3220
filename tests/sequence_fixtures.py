"""Tiny two-domain *sequential* datasets written in code (LLMEMF and enrichment tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_sequences(
    root: Path,
    name: str = "tiny_seq",
    *,
    n_overlap: int = 30,
    n_side: int = 8,
    n_aux_only: int = 6,
    n_aux_items: int = 20,
    n_target_items: int = 16,
    length: int = 8,
    seed: int = 0,
    images: bool = False,
) -> Path:
    """``root/<name>/`` with ``.inter`` (rows in SHUFFLED order; timestamps give the order),
    ``.item`` (titles, optional PNG images) and ``<name>.yaml``.

    Besides the regular users: ``short`` (one target interaction), ``first_target`` (an
    overlapping user whose only target item comes before all their auxiliary items).
    """
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    aux_items = [f"a{i:03d}" for i in range(n_aux_items)]
    target_items = [f"t{i:03d}" for i in range(n_target_items)]
    rows = []  # (user, item, timestamp, domain)

    def add(user, seq):
        for t, item in enumerate(seq):
            rows.append((user, item, 1000.0 + 10 * t, "aux" if item[0] == "a" else "target"))

    for u in range(n_overlap):
        seq = list(rng.choice(aux_items, size=length // 2, replace=False))
        seq += list(rng.choice(target_items, size=length - length // 2, replace=False))
        rng.shuffle(seq)
        add(f"o{u:03d}", [str(i) for i in seq])
    for u in range(n_side):
        add(f"s{u:03d}", [str(i) for i in rng.choice(target_items, size=length, replace=False)])
    for u in range(n_aux_only):
        add(f"x{u:03d}", [str(i) for i in rng.choice(aux_items, size=length, replace=False)])
    add("short", [target_items[0]])
    add("first_target", [target_items[1], aux_items[0], aux_items[1], aux_items[2]])
    order = rng.permutation(len(rows))
    with open(folder / f"{name}.inter", "w") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\tdomain:token\n")
        for i in order:
            user, item, ts, domain = rows[i]
            out.write(f"{user}\t{item}\t{ts:g}\t{domain}\n")

    with open(folder / f"{name}.item", "w") as out:
        out.write(
            "item_id:token\tdomain:token\ttitle:token_seq\tdescription:token_seq\t"
            "categories:token_seq\timage:token\n"
        )
        for i, item in enumerate(aux_items + target_items):
            domain = "aux" if item[0] == "a" else "target"
            kind = "spicy sauce" if domain == "aux" else "steel pan"
            image = ""
            if images and i % 2 == 0:
                from PIL import Image

                (folder / "images").mkdir(exist_ok=True)
                Image.new("RGB", (20, 20), (10 * i % 255, 50, 200)).save(
                    folder / "images" / f"{item}.png"
                )
                image = f"images/{item}.png"
            title = "" if item == aux_items[-1] else f"{kind} number {i}"
            out.write(f"{item}\t{domain}\t{title}\t\t\t{image}\n")
    (folder / f"{name}.yaml").write_text(
        "USER_ID_FIELD: user_id\nITEM_ID_FIELD: item_id\nRATING_FIELD: ~\nTIME_FIELD: timestamp\n"
        "load_col:\n  inter: [user_id, item_id, timestamp, domain]\nfeedback: implicit\n"
        "valid_metric: NDCG@20\naux_domain: food\ntarget_domain: kitchen\n"
    )
    return folder


def sequential_config(model: str = "LLMEMF", dataset: str = "tiny_seq", **overrides):
    """The Config a run of ``model`` on ``dataset`` gets (sequential defaults included)."""
    # here, not at the top: the dataset_prep tests use this module's writer without RecBole
    from recbole.config import Config

    from recbole_music import config_files
    from recbole_music.quick_start import resolve_model

    return Config(
        model=resolve_model(model),
        dataset=dataset,
        config_file_list=config_files(model, dataset, "dataset"),
        config_dict=overrides,
    )
