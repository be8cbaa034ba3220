"""Build the paper's tasks from a raw folder, and the GENERATED demo dataset end to end.

The demo goes through exactly the same path as real data: :func:`dataset_prep.demo.generate_demo_raw`
writes Amazon-2023-layout files into ``<out>/raw/movie_music_demo`` and :func:`build_task` builds
``movie_music_demo`` from them, with ``generated=True`` recorded in ``build.json`` and the stats.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from dataset_prep.builder import BuildResult, DomainSource, build_dataset
from dataset_prep.features.encoders import EncoderSpec
from dataset_prep.features.pipeline import RunSettings, extract_features
from dataset_prep.features.sources import UserTextRule
from dataset_prep.filters import FilterSettings, default_filters
from dataset_prep.layout import BUILD_RECORD, DEMO_DATASET, FEATURE_TABLES, FEATURES_FOLDER
from dataset_prep.presets import default_raw_dir, find_category_files, get_task

logger = logging.getLogger(__name__)

_DEMO_MARKER = ".demo_params.json"  # in the raw folder: the seed/scale it was generated with


def build_task(
    task_name: str,
    *,
    raw_dir: str | Path | None = None,
    out_root: str | Path = "dataset",
    name: str | None = None,
    filters: FilterSettings | None = None,
    max_bad_lines: int = 100,
    keep_work: bool = False,
    show_progress: bool = True,
) -> BuildResult:
    """Build a preset task (``movie_music``, ``book_movie``, ...) from the official raw files."""
    task = get_task(task_name)
    raw = Path(raw_dir) if raw_dir is not None else default_raw_dir(task, out_root)
    aux_files = find_category_files(task.aux, raw)
    target_files = find_category_files(task.target, raw)
    aux = DomainSource(aux_files.reviews, aux_files.meta, aux_files.layout, label=task.aux)
    target = DomainSource(
        target_files.reviews, target_files.meta, target_files.layout, label=task.target
    )
    return build_dataset(
        name or task.name,
        aux,
        target,
        out_root=out_root,
        filters=filters if filters is not None else default_filters(aux_files.layout),
        max_bad_lines=max_bad_lines,
        generated=task.generated,
        keep_work=keep_work,
        show_progress=show_progress,
    )


def generate_demo_raw_once(raw_dir: Path, seed: int = 0, scale: float = 1.0) -> bool:
    """Generate the demo's raw files unless ``raw_dir`` already holds them for this seed/scale.

    Returns True when it generated them.
    """
    from dataset_prep.demo import generate_demo_raw  # imports PIL

    marker = raw_dir / _DEMO_MARKER
    params = {"seed": seed, "scale": scale}
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == params:
                logger.info(
                    "demo raw files for seed=%s scale=%s already in %s", seed, scale, raw_dir
                )
                return False
        except ValueError:
            pass
        marker.unlink()
    raw_dir.mkdir(parents=True, exist_ok=True)
    generate_demo_raw(raw_dir, seed=seed, scale=scale)
    marker.write_text(json.dumps(params), encoding="utf-8")
    return True


# The demo's user texts are kept short (the newest reviews up to this many words per user and
# domain; the default for real data is 384) so that the README's main job, which embeds them on
# first use, stays within a few minutes on 2 CPU cores.
DEMO_USER_BUDGET_WORDS = 64


def build_demo(
    out_root: str | Path = "dataset",
    *,
    seed: int = 0,
    scale: float = 1.0,
    keep_work: bool = False,
    show_progress: bool = True,
    features: bool = True,
) -> BuildResult:
    """Generate (if needed) and build the ``movie_music_demo`` dataset — GENERATED data — and
    (``features``) embed it with the default encoder, as ``dataset_prep features`` would."""
    out_root = Path(out_root)
    raw_dir = default_raw_dir(get_task(DEMO_DATASET), out_root)
    generate_demo_raw_once(raw_dir, seed=seed, scale=scale)
    result = build_task(
        DEMO_DATASET,
        raw_dir=raw_dir,
        out_root=out_root,
        keep_work=keep_work,
        show_progress=show_progress,
    )
    if features:
        compute_demo_features(out_root, show_progress=show_progress)
    return result


def compute_demo_features(out_root: str | Path = "dataset", show_progress: bool = True) -> dict:
    """Embed the demo's items and users with the default encoder (packaged all-MiniLM-L6-v2),
    the tables that are missing only; an interrupted run resumes from its cached shards."""
    folder = Path(out_root) / DEMO_DATASET / FEATURES_FOLDER
    missing = tuple(t for t in FEATURE_TABLES if not (folder / f"{t}.json").is_file())
    if not missing:
        return {}
    logger.warning(
        "embedding the demo's %s with the default encoder (all-MiniLM-L6-v2, CPU; "
        "about a minute or two)",
        ", ".join(missing),
    )
    return extract_features(
        Path(out_root),
        DEMO_DATASET,
        EncoderSpec(),
        tables=missing,
        settings=RunSettings(progress=show_progress),
        user_rule=UserTextRule(budget_words=DEMO_USER_BUDGET_WORDS),
    )


def ensure_demo_dataset(out_root: str | Path = "dataset", seed: int = 0) -> Path:
    """The demo dataset's folder, built (and embedded) first when missing. For the training
    command when a user asks for the demo and has none."""
    folder = Path(out_root) / DEMO_DATASET
    if not (folder / BUILD_RECORD).is_file():
        logger.warning("building the GENERATED demo dataset into %s", folder)
        build_demo(out_root, seed=seed, show_progress=False)
    else:
        compute_demo_features(out_root, show_progress=False)
    return folder
