"""The cross-domain builder: two domains' raw files -> one dataset folder (docs/dataset_format.md).

:func:`build_dataset` runs the whole pipeline:

1. per domain, filter the raw files into a cached spool (:mod:`dataset_prep.spool`): item
   filters, short reviews, duplicates, users below the minimum — memory bounded by users/items;
2. drop item ids found in both domains (from both, with a warning);
3. give every user a role: ``overlap`` (both domains), ``side`` (target only), ``aux_only``;
4. stream the meta files again for the kept items' text and images (local images are copied);
5. write the atomic files, the config fragment, the statistics and ``build.json`` (last) into a
   temporary folder that is renamed into place only when complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from dataset_prep.atomic_output import (
    clean_text,
    format_number,
    staged_dataset_dir,
    write_atomic_file,
)
from dataset_prep.errors import DataError
from dataset_prep.filters import PAPER_FILTERS, FilterSettings
from dataset_prep.layout import AUX, BUILD_RECORD, DOMAINS, TARGET, review_file
from dataset_prep.spool import (
    DomainSource,
    DomainSpool,
    is_url,
    iter_items,
    load_or_build_spool,
    resolve_local_image,
)
from dataset_prep.stats import dataset_stats, format_table, write_stats

__all__ = ["BUILDER_VERSION", "BuildResult", "DomainSource", "build_dataset"]

logger = logging.getLogger(__name__)

BUILDER_VERSION = "1.0"
ROLES = DOMAINS

INTER_HEADER_EXPLICIT = [
    "user_id:token",
    "item_id:token",
    "rating:float",
    "timestamp:float",
    "domain:token",
]
INTER_HEADER_IMPLICIT = ["user_id:token", "item_id:token", "timestamp:float", "domain:token"]
ITEM_HEADER = [
    "item_id:token",
    "domain:token",
    "title:token_seq",
    "description:token_seq",
    "categories:token_seq",
    "image:token",
]
USER_HEADER = ["user_id:token", "role:token"]
REVIEW_HEADER = ["user_id:token", "item_id:token", "domain:token", "text:token_seq"]


@dataclass(frozen=True)
class BuildResult:
    path: Path  # the dataset folder
    stats: dict  # what stats.json holds
    reused_domains: tuple[str, ...] = ()  # domains whose cached spool was reused

    def table(self) -> str:
        return format_table(self.stats)


def build_dataset(
    name: str,
    aux: DomainSource,
    target: DomainSource,
    *,
    out_root: str | Path = "dataset",
    filters: FilterSettings = PAPER_FILTERS,
    max_bad_lines: int = 100,
    generated: bool = False,
    keep_work: bool = False,
    show_progress: bool = True,
) -> BuildResult:
    """Build ``<out_root>/<name>/`` from an auxiliary and a target domain.

    Raises :class:`DataError` when a domain ends up empty (naming the domain, its files and the
    filter that emptied it) or when no user is in both domains.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad dataset name {name!r}")
    out_root = Path(out_root)
    work_dir = out_root / ".work" / name
    sources = {AUX: aux, TARGET: target}
    if aux.label == target.label:
        logger.info("both domains are labelled %r; outputs use aux/target", aux.label)
    started = time.time()

    spools: dict[str, DomainSpool] = {}
    for role in ROLES:
        spools[role] = load_or_build_spool(
            role,
            sources[role],
            filters,
            work_dir,
            max_bad_lines=max_bad_lines,
            show_progress=show_progress,
        )
        _check_not_empty(role, spools[role], filters)

    inter = _drop_colliding_items(spools, filters)
    for role in ROLES:
        _check_not_empty(role, spools[role], filters, inter)
    roles = _user_roles(inter, aux, target)

    explicit = _explicit_feedback(inter, labels={r: sources[r].label for r in ROLES})
    inter = inter.sort_values(
        ["user_id", "timestamp", "item_id", "domain"], kind="mergesort", ignore_index=True
    )
    counts = {r: spools[r].counts for r in ROLES}
    for r in ROLES:
        counts[r].interactions = int((inter["domain"] == r).sum())
    labels = {r: sources[r].label for r in ROLES}
    stats = dataset_stats(
        name,
        inter,
        roles,
        counts,
        labels,
        feedback="explicit" if explicit else "implicit",
        generated=generated,
        filters=filters.as_dict(),
    )

    with staged_dataset_dir(out_root, name) as tmp:
        _write_inter(tmp / f"{name}.inter", inter, explicit)
        _write_items(tmp, name, inter, sources, max_bad_lines, show_progress)
        write_atomic_file(tmp / f"{name}.user", USER_HEADER, ((u, r) for u, r in roles.items()))
        _write_reviews(review_file(tmp, name), inter, spools)
        _write_config(tmp / f"{name}.yaml", labels, explicit, generated)
        write_stats(tmp, stats)
        _write_build_json(
            tmp / BUILD_RECORD, name, sources, filters, max_bad_lines, generated, stats, started
        )
    if not keep_work:
        shutil.rmtree(work_dir, ignore_errors=True)
        try:
            work_dir.parent.rmdir()  # <out>/.work when empty
        except OSError:
            pass
    reused = tuple(r for r in ROLES if spools[r].reused)
    return BuildResult(out_root / name, stats, reused)


# --- steps -----------------------------------------------------------------------------------


def _check_not_empty(
    role: str, spool: DomainSpool, filters: FilterSettings, inter: pd.DataFrame | None = None
) -> None:
    """Raise a DataError naming the domain, its files and the filter that emptied it."""
    n = len(spool.survivors) if inter is None else int((inter["domain"] == role).sum())
    if n:
        return
    c = spool.counts
    src = spool.source
    records = spool.records  # "reviews" or "interactions": the words fit the data
    if inter is not None:
        why = (
            f"its {c.colliding_items:,} item id(s) shared with the other domain were dropped from "
            f"both, and then no user had min_user_reviews={filters.min_user_reviews} {records}"
        )
    elif c.reviews_read == 0:
        why = "the interactions file yielded no rows" + (
            f" (check the where filter {src.where})" if src.where else ""
        )
    elif src.meta is not None and c.items_in_meta == 0:
        why = "the meta file yielded no items" + (
            f" (check the where filter {src.where})" if src.where else ""
        )
    elif src.meta is not None and c.items_passing == 0:
        why = (
            f"no item passed the item filters (without description: {c.items_no_description:,}, "
            f"without image: {c.items_no_image:,}; require_description={filters.require_description}, "
            f"require_image={filters.require_image})"
        )
    elif c.reviews_item_no_meta + c.reviews_item_filtered == c.reviews_read:
        why = (
            f"none of the {records} is of a kept item ({c.reviews_item_no_meta:,} of items without "
            f"meta, {c.reviews_item_filtered:,} of filtered items) — do the item ids of the two "
            "files match?"
        )
    elif c.reviews_too_short + c.reviews_item_no_meta + c.reviews_item_filtered == c.reviews_read:
        why = f"every review is shorter than min_review_words={filters.min_review_words}"
    else:
        why = f"no user has min_user_reviews={filters.min_user_reviews} {records}"
    raise DataError(
        src.reviews,
        None,
        None,
        f"{role} domain {src.label!r} has no interactions left ({src.describe()}): {why}",
    )


def _drop_colliding_items(spools: dict[str, DomainSpool], filters: FilterSettings) -> pd.DataFrame:
    """Both domains' survivors in one frame, without item ids present in both domains.

    Users who fall below the minimum because of it are dropped too (counted with the user filter).
    """
    a, t = spools[AUX].survivors, spools[TARGET].survivors
    both = sorted(set(a["item_id"]) & set(t["item_id"]))
    frames = []
    for role in ROLES:
        df = spools[role].survivors
        c = spools[role].counts
        if both:
            hit = df["item_id"].isin(both)
            c.colliding_items = len(both)
            c.reviews_of_colliding_items = int(hit.sum())
            df = df[~hit]
            per_user = df["user_id"].map(df["user_id"].value_counts())
            low = per_user < filters.min_user_reviews
            if low.any():
                c.users_below_min += int(df.loc[low, "user_id"].nunique())
                c.reviews_of_users_below_min += int(low.sum())
                df = df[~low]
        frames.append(df.assign(domain=role))
    if both:
        logger.warning(
            "%d item id(s) appear in both domains and were dropped from both (e.g. %s)",
            len(both),
            ", ".join(both[:5]),
        )
    return pd.concat(frames, ignore_index=True)


def _user_roles(inter: pd.DataFrame, aux: DomainSource, target: DomainSource) -> pd.Series:
    in_aux = set(inter.loc[inter["domain"] == AUX, "user_id"])
    in_target = set(inter.loc[inter["domain"] == TARGET, "user_id"])
    overlap = in_aux & in_target
    if not overlap:
        raise DataError(
            f"{aux.reviews} + {target.reviews}",
            None,
            None,
            f"no user is in both domains: aux {aux.label!r} ({len(in_aux):,} users) and target "
            f"{target.label!r} ({len(in_target):,} users) share none after filtering — cold-start "
            "cross-domain recommendation needs overlapping users (are the user ids of the same kind?)",
        )
    users = sorted(in_aux | in_target)
    return pd.Series(
        ["overlap" if u in overlap else ("side" if u in in_target else "aux_only") for u in users],
        index=users,
        dtype=object,
    )


def _explicit_feedback(inter: pd.DataFrame, labels: dict[str, str]) -> bool:
    """Explicit when every interaction has a rating. A reader's rating column is all or nothing
    (an empty cell is a bad line), so a mix means one domain's input has no ratings at all: the
    data set is implicit, and the other domain's ratings are dropped — said, not silent."""
    rated = inter["rating"].notna()
    if rated.all():
        return True
    if rated.any():
        unrated = sorted(labels[d] for d in set(inter.loc[~rated, "domain"]))
        rated_domains = sorted(labels[d] for d in set(inter.loc[rated, "domain"]))
        logger.warning(
            "domain(s) %s have no ratings, %s have: built as implicit feedback, and the "
            "ratings of %s are not used",
            unrated,
            rated_domains,
            rated_domains,
        )
    return False


def _write_inter(path: Path, inter: pd.DataFrame, explicit: bool) -> None:
    # rows formatted as they are written: no list of formatted numbers as long as the file
    ts = map(format_number, inter["timestamp"])
    if explicit:
        ratings = map(format_number, inter["rating"])
        rows = zip(inter["user_id"], inter["item_id"], ratings, ts, inter["domain"])
        write_atomic_file(path, INTER_HEADER_EXPLICIT, rows)
    else:
        rows = zip(inter["user_id"], inter["item_id"], ts, inter["domain"])
        write_atomic_file(path, INTER_HEADER_IMPLICIT, rows)


def _write_items(
    folder: Path,
    name: str,
    inter: pd.DataFrame,
    sources: dict[str, DomainSource],
    max_bad_lines: int,
    show_progress: bool,
) -> None:
    """Second meta pass per domain: one ``.item`` row per kept item, local images copied."""
    rows: list[tuple[str, ...]] = []
    copied: dict[Path, str] = {}  # source image -> path relative to the dataset folder
    used_names: set[str] = set()
    for role in ROLES:
        src = sources[role]
        wanted = set(inter.loc[inter["domain"] == role, "item_id"])
        if src.meta is None:  # no item file: the items are known by their ids only
            rows.extend((item_id, role, "", "", "", "") for item_id in wanted)
            continue
        seen: set[str] = set()
        for item in iter_items(
            src, max_bad_lines, f"{role} meta (2nd pass) {src.meta.name}", show_progress
        ):
            item_id = clean_text(item.item_id)
            if item_id not in wanted or item_id in seen:
                continue
            seen.add(item_id)
            image = _output_image(item.image, src.meta, folder, copied, used_names)
            rows.append(
                (
                    item_id,
                    role,
                    clean_text(item.title),
                    clean_text(item.description),
                    " | ".join(c for c in (clean_text(x) for x in item.categories) if c),
                    image,
                )
            )
        missing = wanted - seen
        if missing:  # the meta file changed between the two passes
            raise DataError(
                src.meta, None, None, f"{len(missing)} kept item(s) vanished from the meta file"
            )
    rows.sort(key=lambda r: (r[1] != AUX, r[0]))
    write_atomic_file(folder / f"{name}.item", ITEM_HEADER, rows)


def _output_image(
    image: str, meta: Path, folder: Path, copied: dict[Path, str], used: set[str]
) -> str:
    if not image:
        return ""
    if is_url(image):
        return clean_text(image)
    local = resolve_local_image(image, meta)
    if local is None or not local.is_file():
        return ""  # a missing local image counts as no image
    key = local.resolve()
    if key in copied:
        return copied[key]
    stem, suffix = local.stem, local.suffix
    file_name = clean_text(local.name).replace(" ", "_")
    n = 1
    while file_name in used:
        n += 1
        file_name = clean_text(f"{stem}-{n}{suffix}").replace(" ", "_")
    used.add(file_name)
    (folder / "images").mkdir(exist_ok=True)
    shutil.copyfile(local, folder / "images" / file_name)
    copied[key] = f"images/{file_name}"
    return copied[key]


def _write_reviews(path: Path, inter: pd.DataFrame, spools: dict[str, DomainSpool]) -> None:
    has_text = inter[inter["text_len"] > 0]
    with ExitStack() as stack:
        # os.pread, not mmap: the rows jump around the text files (they are sorted by user), and
        # every mapped page they touch (with its neighbours) would stay resident, so the process
        # would grow by the size of the files.
        fds = {
            role: stack.enter_context(open(spools[role].text_path, "rb")).fileno() for role in ROLES
        }
        pread = os.pread

        def rows():
            for u, i, d, off, n in zip(
                has_text["user_id"],
                has_text["item_id"],
                has_text["domain"],
                has_text["text_off"],
                has_text["text_len"],
            ):
                yield u, i, d, pread(fds[d], n, off).decode("utf-8")

        write_atomic_file(path, REVIEW_HEADER, rows())


def _write_config(path: Path, labels: dict[str, str], explicit: bool, generated: bool) -> None:
    inter_cols = ["user_id", "item_id"] + (["rating"] if explicit else []) + ["timestamp", "domain"]
    config = {
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "RATING_FIELD": "rating" if explicit else None,
        "TIME_FIELD": "timestamp",
        # Only the interactions feed training: .item/.user text and roles are for people and for
        # feature extraction (recbole_music derives roles from the interactions).
        "load_col": {"inter": inter_cols},
        "feedback": "explicit" if explicit else "implicit",
        "aux_domain": labels[AUX],
        "target_domain": labels[TARGET],
        "generated": bool(generated),
    }
    if not explicit:  # no ratings, so no RMSE to select models on
        config["valid_metric"] = "NDCG@20"
    header = "# RecBole config fragment written by `python -m dataset_prep` (see docs/dataset_format.md)\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _write_build_json(
    path: Path,
    name: str,
    sources: dict[str, DomainSource],
    filters: FilterSettings,
    max_bad_lines: int,
    generated: bool,
    stats: dict,
    started: float,
) -> None:
    inputs = {}
    for role in ROLES:
        s = sources[role]
        inputs[role] = {
            "label": s.label,
            "reviews": str(s.reviews),
            "meta": None if s.meta is None else str(s.meta),
            "reviews_size": s.reviews.stat().st_size,
            "meta_size": None if s.meta is None else s.meta.stat().st_size,
            "layout": s.layout,
            "columns": s.columns,
            "where": s.where,
        }
    data = {
        "dataset": name,
        "builder": "dataset_prep.builder",
        "builder_version": BUILDER_VERSION,
        "generated": bool(generated),
        "feedback": stats["feedback"],
        "inputs": inputs,
        "filters": filters.as_dict(),
        "max_bad_lines": max_bad_lines,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.time() - started, 2),
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
