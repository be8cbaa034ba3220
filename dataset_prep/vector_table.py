"""Vector tables beside a dataset: binary tables of float32 vectors keyed by raw ids.

LLM hidden sizes are 2,048–4,096: such tables do not belong in text atomic files (measured:
a 100k × 4,096 table is 3.3 GB of text and minutes to parse, 1.5 GiB of float32 ``.npy`` that
memory-maps in milliseconds). A table ``<dataset>/features/<name>`` is three files:

* ``<name>.npy``  — float32 ``[n, dim]``;
* ``<name>.ids``  — the n raw ids (user or item tokens of the atomic files), one per line;
* ``<name>.json`` — the manifest: rows, dim, and what made the vectors (model, pooling, prompt…).

The manifest is written last, after the other two are complete, and a table without a matching
manifest is never read: an interrupted write cannot be mistaken for a finished one.

This module owns the format (``dataset_prep`` writes the tables); ``recbole_music`` reads them
through :func:`load_vectors` and aligns them to a RecBole dataset in its ``feature_store``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class VectorTable:
    ids: list[str]
    vectors: np.ndarray  # [n, dim], float32, memory-mapped when loaded
    meta: dict

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def _paths(folder: Path, name: str) -> tuple[Path, Path, Path]:
    return folder / f"{name}.npy", folder / f"{name}.ids", folder / f"{name}.json"


def save_vectors(folder, name: str, ids, vectors, meta: dict | None = None) -> Path:
    """Write a table atomically (each file via a temporary name; the manifest last)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = [str(i) for i in ids]
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(ids) != vectors.shape[0]:
        raise ValueError(f"{name}: {len(ids)} ids for vectors of shape {vectors.shape}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name}: duplicate ids")
    if not np.isfinite(vectors).all():
        bad = ids[int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])]
        raise ValueError(f"{name}: vector of '{bad}' holds NaN or inf")
    npy, ids_path, manifest = _paths(folder, name)
    manifest.unlink(missing_ok=True)  # from here on the table reads as incomplete
    for path, write in (
        (npy, lambda f: np.save(f, vectors)),
        (ids_path, lambda f: f.write("".join(f"{i}\n" for i in ids).encode())),
    ):
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    info = {"rows": len(ids), "dim": int(vectors.shape[1]), **(meta or {})}
    tmp = manifest.with_name(manifest.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, manifest)
    return npy


def load_vectors(folder, name: str, mmap: bool = True) -> VectorTable:
    npy, ids_path, manifest = _paths(Path(folder), name)
    if not manifest.is_file():
        raise FileNotFoundError(
            f"feature table '{name}' in {folder} is missing or incomplete (no {manifest.name})"
        )
    meta = json.loads(manifest.read_text())
    vectors = np.load(npy, mmap_mode="r" if mmap else None)
    ids = ids_path.read_text().splitlines()
    if vectors.shape != (meta["rows"], meta["dim"]) or len(ids) != meta["rows"]:
        raise ValueError(
            f"feature table '{name}' in {folder} does not match its manifest: "
            f"{len(ids)} ids, vectors {vectors.shape}, manifest {meta['rows']}×{meta['dim']}"
        )
    return VectorTable(ids=ids, vectors=vectors, meta=meta)
