"""Batching, a resumable shard cache, and the final tables.

A table (``items``, ``users_aux``, ``users_target``) is embedded in shards of ``shard_size``
rows (rows sorted by id). Each finished shard is written atomically to
``<dataset>/features/.work/<table>/<fingerprint>/shard_NNNNN.npz`` with its ids and a digest of
its inputs. The fingerprint hashes everything that shapes a vector — the model (path, kind,
config.json, weight file sizes and times), pooling, first layer, dtype, max length, the prompt
template, the image settings and the user-text rule — so a rerun with the same settings reuses
finished shards (and embeds only the rest), while a rerun with another model/prompt/pooling
lands in another folder and never mixes shards. A cached shard whose ids or input digest no
longer match the data (the dataset was rebuilt) is embedded again.

When every shard is there, the table is written with ``save_vectors`` (manifest last) and the
work folder of that fingerprint is removed. Rows with nothing to embed (no text and no usable
image) get no vector and are counted; ``align_to_dataset`` then gives them a zero vector and a
False mask.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dataset_prep.features.encoders import load_encoder
from dataset_prep.features.images import ImageLoader, color_histogram, with_descriptor
from dataset_prep.features.prompts import get_prompts
from dataset_prep.features.ray_shards import RayCluster, RaySettings
from dataset_prep.features.sources import (
    Row,
    UserTextRule,
    _read_atomic,
    item_rows,
    rows_digest,
    texts_digest,
    user_rows,
)
from dataset_prep.layout import (
    BUILD_RECORD,
    FEATURE_TABLES,
    FEATURES_FOLDER,
    USERS_AUX_TABLE,
    USERS_TARGET_TABLE,
)
from dataset_prep.progress import Progress, format_duration
from dataset_prep.vector_table import load_vectors, save_vectors

logger = logging.getLogger("dataset_prep.features")

IMG_NOT_LOOKED, IMG_NONE, IMG_OK, IMG_BAD = 0, 1, 2, 3


class FeatureError(ValueError):
    """Bad input or a table that does not fit the dataset; the message names file and id."""


@dataclass
class RunSettings:
    shard_size: int = 512
    batch_size: int = 32
    max_bad_image_share: float = 0.05  # of the items that name an image
    image_descriptor: str = "none"  # "none" | "color-hist" (for text-only encoders)
    descriptor_weight: float = 0.5
    image_timeout: float = 20.0
    progress: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


def model_identity(path: str) -> dict:
    """What identifies the weights without hashing gigabytes: config.json's hash and the
    weight files' names, sizes and modification times."""
    p = Path(path)
    if not p.is_dir():
        return {"hub_id": path}
    files = sorted(
        f
        for f in p.rglob("*")
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".pt", ".gguf")
    )
    return {
        "config_sha256": hashlib.sha256((p / "config.json").read_bytes()).hexdigest(),
        "weights": [
            [str(f.relative_to(p)), f.stat().st_size, int(f.stat().st_mtime)] for f in files
        ],
    }


def fingerprint(info: dict) -> str:
    return hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()


def _save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def encode_shard(
    rows: list[Row],
    encoder,
    settings: RunSettings,
    loader: ImageLoader | None,
    use_images: bool,
    bad: list,
    progress: Progress,
) -> dict:
    n = len(rows)
    status = np.full(n, IMG_NOT_LOOKED, dtype=np.int8)
    images: list = [None] * n
    hists = None
    if loader is not None:
        if settings.image_descriptor == "color-hist":
            hists = np.zeros((n, 64), dtype=np.float32)
        for i, row in enumerate(rows):
            img, st, reason = loader.load(row.image)
            status[i] = {"none": IMG_NONE, "ok": IMG_OK, "unreadable": IMG_BAD}[st]
            if st == "unreadable":
                bad.append((row.id, row.image, reason))
            elif img is not None:
                if use_images:
                    images[i] = img
                if hists is not None:
                    hists[i] = color_histogram(img)
    skipped = np.array([r.empty_text and images[i] is None for i, r in enumerate(rows)])
    todo = [i for i in range(n) if not skipped[i]]
    todo.sort(key=lambda i: -len(rows[i].text))  # similar lengths together: less padding
    vectors = None
    for start in range(0, len(todo), settings.batch_size):
        batch = todo[start : start + settings.batch_size]
        texts = [rows[i].text for i in batch]
        if use_images:
            out = encoder.encode_items(texts, [images[i] for i in batch])
        else:
            out = encoder.encode_texts(texts)
        if vectors is None:
            vectors = np.zeros((n, out.shape[1]), dtype=np.float32)
        vectors[batch] = out
        progress.update(len(batch))
    progress.update(n - len(todo))
    if vectors is None:
        vectors = np.zeros((n, encoder.dim), dtype=np.float32)
    if hists is not None:
        vectors = with_descriptor(vectors, hists, settings.descriptor_weight)
        vectors[skipped] = 0.0
    return {"vectors": vectors, "skipped": skipped, "image_status": status}


def _cached_shard(path: Path, shard_rows: list[Row], dim: int | None) -> dict | None:
    """The cached result of a shard, or None when it must be embedded (no file, or one made
    from other rows: the dataset was rebuilt); ``dim`` is that of the shards read before."""
    if not path.is_file():
        return None
    with np.load(path) as z:
        if str(z["digest"]) != rows_digest(shard_rows) or not np.array_equal(
            z["ids"], np.array([r.id for r in shard_rows])
        ):
            return None
        cached = {key: z[key] for key in ("vectors", "skipped", "image_status")}
    if dim is not None and cached["vectors"].shape[1] != dim:
        raise FeatureError(
            f"{path}: cached vectors have dim {cached['vectors'].shape[1]}, other shards "
            f"{dim}; delete {path.parent}"
        )
    return cached


def reads_images(images: dict) -> bool:
    """Whether a table's rows need their images read (``image_settings``'s answer)."""
    return images["used_by_model"] or images["descriptor"] != "none"


def encode_shard_reading_images(rows, encoder, settings, base_dir, images, progress, loader=None):
    """(result, unreadable images) of one shard, its images read from ``base_dir`` as
    ``images`` says (``loader``: one to reuse across shards)."""
    if loader is None and reads_images(images):
        loader = ImageLoader(base_dir, settings.image_timeout)
    bad: list = []
    use_images = images["used_by_model"]
    return encode_shard(rows, encoder, settings, loader, use_images, bad, progress), bad


def _encode_here(todo, shards, encoder, settings, base_dir, images, progress):
    """(shard index, result, unreadable images) of each shard in ``todo``, embedded in this
    process."""
    loader = ImageLoader(base_dir, settings.image_timeout) if reads_images(images) else None
    for k in todo:
        args = (shards[k], encoder, settings, base_dir, images, progress, loader)
        yield k, *encode_shard_reading_images(*args)


def image_settings(encoder, settings: RunSettings, is_items: bool) -> dict:
    """How images enter a table's vectors (part of its fingerprint)."""
    use_images = is_items and encoder.supports_images
    descriptor = settings.image_descriptor if is_items and not use_images else "none"
    if settings.image_descriptor not in ("none", "color-hist"):
        raise FeatureError(f"--image-descriptor {settings.image_descriptor}: none or color-hist")
    return {
        "used_by_model": use_images,
        "descriptor": descriptor,
        "descriptor_weight": settings.descriptor_weight if descriptor != "none" else None,
    }


def fingerprint_info(
    table: str, encoder, template: str, images: dict, extra_fingerprint: dict | None = None
) -> dict:
    """Everything that shapes a table's vectors except the rows' own inputs (the rule of the
    shard cache; ``fingerprint`` hashes it)."""
    return {
        "table": table,
        "encoder": encoder.describe(),
        "model_identity": getattr(encoder, "model_identity", None) or model_identity(encoder.path),
        "prompt_template": template,
        "images": images,
        **(extra_fingerprint or {}),
    }


def has_something_to_embed(row: Row, images: dict) -> bool:
    uses_images = images["used_by_model"] or images["descriptor"] != "none"
    return not row.empty_text or bool(row.image and uses_images)


def embed_table(
    table: str,
    rows: list[Row],
    encoder,
    *,
    features_dir: Path,
    base_dir: Path,
    settings: RunSettings,
    template: str,
    extra_fingerprint: dict | None = None,
    meta: dict | None = None,
    is_items: bool = True,
    workers=None,
) -> dict | None:
    """Embed ``rows`` into ``features_dir/<table>`` (resuming from cached shards).

    ``workers`` (``ray_shards.ShardWorkers``) embeds the shards on Ray workers instead of with
    ``encoder`` here; the shard cache and the table are the same either way. Returns the
    table's manifest, or None when no row has anything to embed (the caller says what stands
    in): an empty table would read as features that are there."""
    started = time.monotonic()
    images = image_settings(encoder, settings, is_items)
    use_images, descriptor = images["used_by_model"], images["descriptor"]
    if not any(has_something_to_embed(r, images) for r in rows):
        return None
    if is_items and not use_images:
        if descriptor == "none":
            logger.warning(
                "%s: the encoder (%s) cannot see images: items are embedded from TEXT ONLY "
                "(use a clip/llava encoder, or --image-descriptor color-hist)",
                table,
                encoder.kind,
            )
        else:
            logger.warning(
                "%s: text-only encoder; images enter as a hand-made colour histogram "
                "(--image-descriptor color-hist), not through a multimodal model",
                table,
            )
    info = fingerprint_info(table, encoder, template, images, extra_fingerprint)
    fp = fingerprint(info)
    root = features_dir / ".work" / table
    work = root / fp[:16]
    work.mkdir(parents=True, exist_ok=True)
    others = [p.name for p in root.iterdir() if p.is_dir() and p.name != work.name]
    if others:
        logger.info(
            "%s: cached shards of other settings (%s) are left alone and not used",
            table,
            ", ".join(others),
        )
    (work / "fingerprint.json").write_text(json.dumps(info, indent=2, default=str) + "\n")

    n_image_refs = sum(1 for r in rows if r.image) if is_items else 0
    bad_limit = int(settings.max_bad_image_share * n_image_refs)
    bad: list[tuple[str, str, str]] = []

    def check_bad_images():
        if len(bad) > bad_limit:
            shown = "; ".join(f"item {i}: {ref} ({why})" for i, ref, why in bad[:5])
            raise FeatureError(
                f"{table}: {len(bad)} of {n_image_refs} item images are unreadable, more than "
                f"--max-bad-image-share {settings.max_bad_image_share} allows ({bad_limit}). "
                f"First: {shown}. Images are resolved against {base_dir}. Finished shards "
                f"are cached in {work}."
            )

    shards = [rows[i : i + settings.shard_size] for i in range(0, len(rows), settings.shard_size)]
    results: list[dict | None] = [None] * len(shards)
    todo, embedded, reused, dim = [], 0, 0, None
    progress = Progress(len(rows), table, "rows", enabled=settings.progress)
    try:
        for k, shard_rows in enumerate(shards):
            cached = _cached_shard(work / f"shard_{k:05d}.npz", shard_rows, dim)
            if cached is None:
                todo.append(k)
                continue
            dim = cached["vectors"].shape[1]
            reused += len(shard_rows)
            progress.update(len(shard_rows))
            bad.extend(
                (shard_rows[i].id, shard_rows[i].image, "(cached shard)")
                for i in np.flatnonzero(cached["image_status"] == IMG_BAD)
            )
            results[k] = cached
        check_bad_images()
        started = time.monotonic()
        if workers is None:
            finished = _encode_here(todo, shards, encoder, settings, base_dir, images, progress)
        else:
            finished = workers.encode(todo, shards, settings, base_dir, images)
        # closing: a stop (too many bad images, Ctrl-C) cancels the shards still running
        with contextlib.closing(finished):
            for k, res, shard_bad in finished:
                _save_npz(
                    work / f"shard_{k:05d}.npz",
                    ids=np.array([r.id for r in shards[k]]),
                    digest=np.array(rows_digest(shards[k])),
                    **res,
                )
                if workers is not None:
                    progress.update(len(shards[k]))
                if not embedded:
                    parallel = workers.parallelism if workers is not None else 1
                    _estimate_after_first_shard(
                        table, work, shards, k, time.monotonic() - started, parallel
                    )
                embedded += len(shards[k])
                results[k] = res
                bad.extend(shard_bad)
                check_bad_images()
    finally:
        progress.close()

    ids = [r.id for r in rows]
    vectors = np.concatenate([r["vectors"] for r in results]) if results else np.zeros((0, 0))
    skipped = np.concatenate([r["skipped"] for r in results]) if results else np.zeros(0, bool)
    status = np.concatenate([r["image_status"] for r in results]) if results else np.zeros(0)
    keep = ~skipped
    counts = {
        "rows_in_dataset": len(rows),
        "rows_written": int(keep.sum()),
        "empty_texts": int(sum(r.empty_text for r in rows)),
        "skipped_nothing_to_embed": int(skipped.sum()),
        "skipped_ids_first": [ids[i] for i in np.flatnonzero(skipped)[:20]],
    }
    if is_items:
        counts.update(
            {
                "items_without_image": int(sum(1 for r in rows if not r.image)),
                "images_unreadable": len(bad),
                "images_unreadable_first": [f"{i}: {ref}" for i, ref, _ in bad[:20]],
                "images_used": int((status == IMG_OK).sum()) if reads_images(images) else 0,
                "text_only_rows": int(keep.sum() - (status[keep] == IMG_OK).sum())
                if use_images
                else int(keep.sum()),
            }
        )
    manifest = {
        **(meta or {}),
        "table": table,
        "model": encoder.spec.model,
        "model_path": encoder.path,
        "kind": encoder.kind,
        "pooling": encoder.pooling,
        "first_layer": encoder.describe()["first_layer"],
        "dtype": encoder.spec.dtype,
        "max_length": encoder.max_length,
        "model_dim": encoder.dim,
        "prompt_template": template,
        "images": info["images"],
        "counts": counts,
        "fingerprint": fp,
        "texts_sha256": texts_digest(rows),  # with the fingerprint: what `enrich` may reuse
        "run": {
            "rows_embedded": embedded,
            "rows_from_cache": reused,
            "workers": workers.parallelism if workers is not None else 1,
            "seconds": round(time.monotonic() - started, 2),
        },
        **({k: v for k, v in (extra_fingerprint or {}).items()}),
    }
    save_vectors(
        features_dir, table, [ids[i] for i in np.flatnonzero(keep)], vectors[keep], manifest
    )
    manifest = {"rows": int(keep.sum()), "dim": int(vectors.shape[1]), **manifest}
    shutil.rmtree(work, ignore_errors=True)
    for folder in (root, root.parent):  # .work/<table>, then .work, when empty
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    logger.info(
        "%s: %d rows written (%d embedded now, %d from cache), dim %d",
        table,
        counts["rows_written"],
        embedded,
        reused,
        vectors.shape[1],
    )
    return manifest


def _estimate_after_first_shard(
    table: str, work: Path, shards: list, first: int, seconds: float, parallel: int = 1
) -> None:
    """Say how long the rest will take, from the first shard embedded in this run (shards
    whose cache file is there count as done; ``parallel`` workers share the rest)."""
    left = sum(
        len(rows)
        for k, rows in enumerate(shards)
        if k > first and not (work / f"shard_{k:05d}.npz").is_file()
    )
    if left:
        per_row = seconds / len(shards[first])
        logger.info(
            "%s: %d rows embedded in %s; about %s left for the other %d rows",
            table,
            len(shards[first]),
            format_duration(seconds),
            format_duration(per_row * left / parallel),
            left,
        )


def _dataset_ids(folder: Path, name: str, table: str) -> tuple[set[str], Path]:
    if table == "items" or table.startswith("item"):
        path = folder / f"{name}.item"
        _, rows = _read_atomic(path)
        return {r["item_id"] for r in rows}, path
    path = folder / f"{name}.inter"
    _, rows = _read_atomic(path)
    return {r["user_id"] for r in rows}, path


def verify_table(folder: Path, name: str, table: str, dim: int | None = None) -> dict:
    """Check that ``features/<table>`` fits the dataset: every id known, the expected dim.
    Errors name the table file and the first offending ids."""
    features = Path(folder) / FEATURES_FOLDER
    try:
        t = load_vectors(features, table)
    except (FileNotFoundError, ValueError) as exc:
        raise FeatureError(str(exc)) from exc
    known, source = _dataset_ids(Path(folder), name, table)
    unknown = [i for i in t.ids if i not in known]
    ids_file = features / f"{table}.ids"
    if unknown:
        what = "item" if table.startswith("item") else "user"
        raise FeatureError(
            f"{ids_file}: {len(unknown)} of {len(t.ids)} ids are not {what}s of {source} "
            f"(first: {what} '{unknown[0]}'); the table was made for another dataset or build — "
            f"rerun `python -m dataset_prep features --dataset {name}`"
        )
    if dim is not None and t.dim != dim:
        raise FeatureError(f"{features / (table + '.npy')}: dim {t.dim}, expected {dim}")
    return {
        "table": table,
        "rows": len(t.ids),
        "dim": t.dim,
        "dataset_ids": len(known),
        "coverage": round(len(t.ids) / max(len(known), 1), 4),
    }


def extract_features(
    data_path: Path,
    name: str,
    spec,
    *,
    tables: tuple[str, ...] = FEATURE_TABLES,
    prompts: str | None = None,
    settings: RunSettings | None = None,
    user_rule=None,
    encoder=None,
    ray: RaySettings | None = None,
    encoder_factory=None,
) -> dict[str, dict]:
    """Embed the chosen tables of ``data_path/name`` with one encoder; returns the manifests.

    With ``ray``, the shards are embedded by Ray workers (``ray_shards``), each loading the
    encoder with ``encoder_factory`` (default ``load_encoder``) once; the tables are the same."""
    settings = settings or RunSettings()
    user_rule = user_rule or UserTextRule()
    folder = Path(data_path) / name
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such dataset folder (build it first)")
    for t in tables:
        if t not in FEATURE_TABLES:
            raise FeatureError(f"unknown table {t!r}; one of {', '.join(FEATURE_TABLES)}")
    build = {}
    if (folder / BUILD_RECORD).is_file():
        build = json.loads((folder / BUILD_RECORD).read_text())
    if ray is None:
        return _extract(
            folder, name, encoder or load_encoder(spec), tables, prompts, settings, user_rule, build
        )
    with RayCluster(ray) as cluster:
        workers = cluster.workers(spec, encoder_factory)
        try:
            return _extract(
                folder, name, workers.snapshot, tables, prompts, settings, user_rule, build, workers
            )
        finally:
            workers.close()


def _extract(folder, name, encoder, tables, prompts, settings, user_rule, build, workers=None):
    prompt_set = get_prompts(prompts, encoder.kind)
    meta = {
        "dataset": name,
        "generated": bool(build.get("generated", False)),
        "prompt_set": prompt_set.name,
    }
    out = {}
    for table in tables:
        is_items = table == "items"
        if is_items:
            rows, template, extra = item_rows(folder, name, prompt_set), prompt_set.item, None
        else:
            domain = table.split("_", 1)[1]
            rows = user_rows(folder, name, domain, prompt_set, user_rule)
            template = prompt_set.user
            extra = {"user_text_rule": user_rule.as_dict(), "domain": domain}
        manifest = embed_table(
            table,
            rows,
            encoder,
            features_dir=folder / FEATURES_FOLDER,
            base_dir=folder,
            settings=settings,
            template=template,
            extra_fingerprint=extra,
            meta=meta,
            is_items=is_items,
            workers=workers,
        )
        if manifest is None:
            _say_what_stands_in(folder / FEATURES_FOLDER, table, len(rows))
            continue
        out[table] = manifest
        verify_table(folder, name, table)
    return out


# Why a table has nothing to embed, and what MuSiC does without it (recbole_music/model/music/features.py).
STAND_INS = {
    "items": "no item has text or a usable image (a ratings-only build?): no table written; "
    "MuSiC's feature_source auto uses collaborative features (learned ID embeddings)",
    USERS_AUX_TABLE: "no user has review text: no table written; MuSiC's user_vectors auto builds "
    "user vectors from the items each user interacted with (history)",
}
STAND_INS[USERS_TARGET_TABLE] = STAND_INS[USERS_AUX_TABLE]


def _say_what_stands_in(features_dir: Path, table: str, rows: int) -> None:
    """Warn that ``table`` is not written, and about a table of an earlier run in its place."""
    message = f"{table} ({rows:,} rows): {STAND_INS[table]}"
    manifest = features_dir / f"{table}.json"
    if manifest.is_file():
        if json.loads(manifest.read_text()).get("rows") == 0:
            # an empty table of an earlier version: it holds nothing, but reads as present
            for suffix in (".json", ".npy", ".ids"):  # the manifest first: never half a table
                (features_dir / f"{table}{suffix}").unlink(missing_ok=True)
            message += f". The empty {table} table of an earlier run was removed"
        else:
            message += (
                f". The {table} table of an earlier run is still in {features_dir} and "
                f"will be used: delete {table}.json, .npy and .ids there if it is not of "
                "this data"
            )
    logger.warning(message)
