"""One domain's first pass: filter the raw files into a compact, cached spool.

Steps 1-2 of a build, per domain, with memory bounded by distinct users and items (never by the
number of review lines):

1. stream the meta file once -> the set of item ids passing the item filters (a domain without
   an item file keeps every item of its interactions, known by id only);
2. stream the reviews -> drop reviews of items without meta or failing the filters, and reviews
   with too few words; append the rest to ``spool.bin`` (fixed-size binary records: user and item
   as positions in the distinct ids, rating, timestamp, line, and where the cleaned review text
   sits in ``text.bin``), counting reviews per user;
3. read back only the reviews of users with enough reviews to possibly pass the user filter (the
   survivors, small), drop duplicate user-item pairs (first kept), drop users below the minimum;
4. save the survivors (``survivors.pkl``) and a completion marker ``done.json`` keyed by the
   input files (path, size, mtime), the reader options and the filter settings.

A rerun with the same key reuses the spool ("reusing ..."); another key throws it away.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dataset_prep import readers
from dataset_prep.atomic_output import clean_text
from dataset_prep.errors import DataError
from dataset_prep.filters import FilterSettings, item_failures
from dataset_prep.progress import Progress
from dataset_prep.stats import DomainCounts

logger = logging.getLogger(__name__)

SPOOL_VERSION = 1
WRITE_EVERY = 4096  # spooled reviews buffered between writes
SURVIVOR_CHUNK = 1_000_000  # spool records read back at a time
# spool.bin: one fixed-size record per review that passed the review filters; user and item are
# positions in the spool's id lists, a missing rating is NaN, a missing timestamp the line number.
SPOOL_RECORD = struct.Struct("<iiddqqq")
SPOOL_DTYPE = np.dtype(
    [
        ("user", "<i4"),
        ("item", "<i4"),
        ("rating", "<f8"),
        ("timestamp", "<f8"),
        ("line", "<i8"),
        ("text_off", "<i8"),
        ("text_len", "<i8"),
    ]
)
SPOOL_COLUMNS = ["user_id", "item_id", "rating", "timestamp", "line", "text_off", "text_len"]
_SPOOL_DTYPES = {
    "user_id": str,
    "item_id": str,
    "rating": "float64",
    "timestamp": "float64",
    "line": "int64",
    "text_off": "int64",
    "text_len": "int64",
}


@dataclass(frozen=True)
class DomainSource:
    """Where one domain's raw data is, and how to read it."""

    reviews: Path  # the interactions (reviews, or plain ratings)
    meta: Path | None  # the item file; None: items are known by id only and carry no text
    layout: str | None = None  # None: detected from the file
    columns: dict[str, str] | None = None  # tabular sources: role -> column name
    where: dict[str, str] | None = None  # tabular sources: keep rows with column == value
    label: str = ""  # the domain's name in outputs (a category, or derived from the files)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reviews", Path(self.reviews))
        if self.meta is not None:
            object.__setattr__(self, "meta", Path(self.meta))
        if not self.label:
            if self.where:
                label = "_".join(str(v) for v in self.where.values())
            else:
                label = self.reviews.name.split(".")[0]
            object.__setattr__(self, "label", label)

    def describe(self) -> str:
        text = f"interactions {self.reviews}, " + (
            f"items {self.meta}" if self.meta is not None else "no item file"
        )
        if self.where:
            text += " where " + ", ".join(f"{k}={v}" for k, v in self.where.items())
        return text


@dataclass
class DomainSpool:
    """The cached result of one domain's first pass."""

    role: str  # "aux" | "target"
    source: DomainSource
    folder: Path
    counts: DomainCounts
    survivors: pd.DataFrame = field(repr=False)  # SPOOL_COLUMNS, one row per kept review
    reused: bool = False
    has_text: bool = True  # False: plain interactions (ratings), no review text at all

    @property
    def records(self) -> str:
        """What this domain's rows are called in messages: reviews, or plain interactions."""
        return "reviews" if self.has_text else "interactions"

    @property
    def text_path(self) -> Path:
        return self.folder / "text.bin"


def _file_key(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def spool_key(role: str, source: DomainSource, filters: FilterSettings, max_bad_lines: int) -> dict:
    """What the cached spool depends on; any change invalidates it."""
    for p in (source.reviews, source.meta):
        if p is not None and not p.is_file():
            raise DataError(p, None, None, f"{role} domain: file not found")
    return {
        "version": SPOOL_VERSION,
        "role": role,
        "reviews": _file_key(source.reviews),
        "meta": None if source.meta is None else _file_key(source.meta),
        "layout": source.layout,
        "columns": source.columns,
        "where": source.where,
        "filters": filters.as_dict(),
        "max_bad_lines": max_bad_lines,
    }


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def resolve_local_image(image: str, meta_path: Path) -> Path | None:
    """A local image path resolved relative to the meta file's folder; ``None`` for URLs/empty."""
    if not image or is_url(image):
        return None
    p = Path(image)
    return p if p.is_absolute() else meta_path.parent / p


def has_image(image: str, meta_path: Path) -> bool:
    """A URL counts as an image; a local path only when the file exists."""
    if not image:
        return False
    if is_url(image):
        return True
    local = resolve_local_image(image, meta_path)
    return local is not None and local.is_file()


def progress(path: Path, desc: str, enabled: bool) -> Progress:
    """Progress over the bytes of ``path``; its ``update`` is the readers' ``on_bytes`` callback."""
    return Progress(path.stat().st_size, desc, "B", enabled=enabled, unit_scale=True)


def iter_items(
    source: DomainSource, max_bad_lines: int, desc: str, show_progress: bool
) -> Iterator:
    with progress(source.meta, desc, show_progress) as bar:
        yield from readers.read_items(
            source.meta,
            source.layout,
            max_bad_lines=max_bad_lines,
            columns=source.columns,
            where=source.where,
            on_bytes=bar.update,
        )


def iter_reviews(
    source: DomainSource, max_bad_lines: int, desc: str, show_progress: bool
) -> Iterator[tuple]:
    """The domain's reviews as tuples in ``Review``'s field order (``as_tuples``)."""
    with progress(source.reviews, desc, show_progress) as bar:
        yield from readers.read_reviews(
            source.reviews,
            source.layout,
            max_bad_lines=max_bad_lines,
            columns=source.columns,
            where=source.where,
            on_bytes=bar.update,
            as_tuples=True,
        )


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def load_or_build_spool(
    role: str,
    source: DomainSource,
    filters: FilterSettings,
    work_dir: Path,
    *,
    max_bad_lines: int = 100,
    show_progress: bool = True,
) -> DomainSpool:
    """The domain's filtered survivors, from the cache in ``work_dir/<role>`` when it is valid."""
    folder = Path(work_dir) / role
    key = spool_key(role, source, filters, max_bad_lines)
    marker = folder / "done.json"
    if marker.is_file():
        try:
            done = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            done = {}
        if done.get("key") == json.loads(json.dumps(key)) and (folder / "survivors.pkl").is_file():
            logger.info("reusing the %s spool of %s (%s)", role, source.label, folder)
            survivors = pd.read_pickle(folder / "survivors.pkl")
            counts = DomainCounts.from_dict(done["counts"])
            has_text = bool(done.get("has_text", True))
            return DomainSpool(role, source, folder, counts, survivors, True, has_text)
        logger.info("inputs or settings changed since the cached %s spool; rebuilding it", role)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    counts = DomainCounts()
    passing = _passing_items(source, filters, counts, max_bad_lines, role, show_progress)
    ids = _spool_reviews(
        source, filters, counts, passing, folder, max_bad_lines, role, show_progress
    )
    del passing
    survivors = _survivors(folder / "spool.bin", ids, filters, counts, role, source)
    has_text = ids.has_text
    del ids
    survivors.to_pickle(folder / "survivors.pkl")
    (folder / "spool.bin").unlink()
    _write_json(marker, {"key": key, "counts": counts.as_dict(), "has_text": has_text})
    return DomainSpool(role, source, folder, counts, survivors, has_text=has_text)


def _passing_items(
    source: DomainSource,
    filters: FilterSettings,
    counts: DomainCounts,
    max_bad_lines: int,
    role: str,
    show_progress: bool,
) -> dict[str, bool] | _EveryItem:
    """item id -> passes the item filters (first meta line of an id wins)."""
    if source.meta is None:
        if filters.require_description or filters.require_image:
            raise DataError(
                source.reviews,
                None,
                None,
                f"{role} domain {source.label!r} has no item file, so no item has a description "
                "or an image: give the item file, or turn require_description/require_image off "
                "(--no-require-description --no-require-image)",
            )
        return _EVERY_ITEM
    passing: dict[str, bool] = {}
    for item in iter_items(source, max_bad_lines, f"{role} meta {source.meta.name}", show_progress):
        if item.item_id in passing:
            continue
        counts.items_in_meta += 1
        image_ok = has_image(item.image, source.meta) if filters.require_image else True
        failed = item_failures(item, image_ok, filters)
        counts.items_no_description += "no_description" in failed
        counts.items_no_image += "no_image" in failed
        passing[item.item_id] = not failed
        counts.items_passing += not failed
    return passing


class _EveryItem:
    """Without an item file every item of the interactions is kept (known by its id only)."""

    def get(self, item_id: str) -> bool:
        return True


_EVERY_ITEM = _EveryItem()


@dataclass
class _SpoolIds:
    """The distinct (cleaned) user and item ids of a spool; the spool stores their positions."""

    users: list[str]
    items: list[str]
    reviews_per_user: list[int]  # spooled reviews per user position
    has_text: bool  # any spooled review has text

    @property
    def records(self) -> str:
        return "reviews" if self.has_text else "interactions"


def _spool_reviews(
    source: DomainSource,
    filters: FilterSettings,
    counts: DomainCounts,
    passing: dict[str, bool] | _EveryItem,
    folder: Path,
    max_bad_lines: int,
    role: str,
    show_progress: bool,
) -> _SpoolIds:
    """Filter the reviews into ``spool.bin`` (fixed-size ``SPOOL_RECORD`` rows, ids as positions
    in the returned id lists) and ``text.bin`` (the cleaned review texts, back to back)."""
    # The hot loop of a build, once per review line, so everything is inlined:
    # * review_long_enough + clean_text with one look at the text: the words of "summary text" are
    #   the summary's plus the text's, and clean_text's whitespace collapsing is
    #   " ".join(text.split()) (re's \s is str.isspace). Usual text — printable (every whitespace
    #   but " " is not), single spaces, none at either end — is already collapsed, and its words
    #   are its spaces + 1, so it is neither split nor joined.
    # * ids: each raw id is cleaned once and numbered; memory stays bounded by users + items.
    # * rows are packed binary records, written a few thousand at a time.
    desc = f"{role} interactions {source.reviews.name}"
    min_words = filters.min_review_words
    user_pos: dict[str, int] = {}  # raw id -> position of its cleaned id
    item_pos: dict[str, int] = {}
    clean_users: dict[str, int] = {}  # cleaned id -> position
    clean_items: dict[str, int] = {}
    per_user: list[int] = []
    pack = SPOOL_RECORD.pack
    rows: list[bytes] = []
    texts: list[bytes] = []
    offset = 0
    read = no_meta = filtered = too_short = 0
    nan = float("nan")
    with (
        open(folder / "spool.bin", "wb") as spool,
        open(folder / "text.bin", "wb") as text_file,
    ):
        for user_id, item_id, rating, timestamp, text, summary, line in iter_reviews(
            source, max_bad_lines, desc, show_progress
        ):
            read += 1
            ok = passing.get(item_id)
            if not ok:
                if ok is None:
                    no_meta += 1
                else:
                    filtered += 1
                continue
            joined = f"{summary} {text}"
            if (
                joined.isprintable()
                and "  " not in joined
                and joined[0] != " "
                and joined[-1] != " "
            ):
                if joined.count(" ") + 1 < min_words:
                    too_short += 1
                    continue
            else:
                words = joined.split()
                if len(words) < min_words:
                    too_short += 1
                    continue
                joined = " ".join(words)
            if '"' in joined:
                joined = joined.replace('"', "'")
            data = joined.encode("utf-8")
            n = len(data)
            texts.append(data)
            u = user_pos.get(user_id)
            if u is None:
                u = user_pos[user_id] = clean_users.setdefault(
                    clean_text(user_id), len(clean_users)
                )
                if u == len(per_user):
                    per_user.append(0)
            per_user[u] += 1
            i = item_pos.get(item_id)
            if i is None:
                i = item_pos[item_id] = clean_items.setdefault(
                    clean_text(item_id), len(clean_items)
                )
            rows.append(
                pack(
                    u,
                    i,
                    nan if rating is None else rating,
                    timestamp if timestamp is not None else line,
                    line,
                    offset,
                    n,
                )
            )
            offset += n
            if len(rows) >= WRITE_EVERY:  # big writes: one per few thousand reviews
                spool.write(b"".join(rows))
                text_file.write(b"".join(texts))
                rows.clear()
                texts.clear()
        spool.write(b"".join(rows))
        text_file.write(b"".join(texts))
    counts.reviews_read += read
    counts.reviews_item_no_meta += no_meta
    counts.reviews_item_filtered += filtered
    counts.reviews_too_short += too_short
    return _SpoolIds(list(clean_users), list(clean_items), per_user, offset > 0)


def _survivors(
    spool_path: Path,
    ids: _SpoolIds,
    filters: FilterSettings,
    counts: DomainCounts,
    role: str,
    source: DomainSource,
) -> pd.DataFrame:
    minimum = filters.min_user_reviews
    # users with enough spooled reviews to possibly pass (duplicates are dropped below)
    candidate = np.asarray(ids.reviews_per_user, dtype=np.int64) >= minimum
    chunks = []
    with open(spool_path, "rb") as f:
        while True:  # a million records at a time: memory follows the survivors, not the lines
            chunk = np.fromfile(f, dtype=SPOOL_DTYPE, count=SURVIVOR_CHUNK)
            if not len(chunk):
                break
            chunks.append(chunk[candidate[chunk["user"]]])
    kept = np.concatenate(chunks) if chunks else np.empty(0, SPOOL_DTYPE)
    users = np.array(ids.users, dtype=object)
    items = np.array(ids.items, dtype=object)
    df = pd.DataFrame(
        {
            "user_id": users[kept["user"]] if len(users) else np.empty(0, object),
            "item_id": items[kept["item"]] if len(items) else np.empty(0, object),
            "rating": kept["rating"].astype("float64"),
            "timestamp": kept["timestamp"].astype("float64"),
            "line": kept["line"].astype("int64"),
            "text_off": kept["text_off"].astype("int64"),
            "text_len": kept["text_len"].astype("int64"),
        },
        columns=SPOOL_COLUMNS,
    )
    del kept
    df = df.astype(_SPOOL_DTYPES)

    dup = df.duplicated(["user_id", "item_id"], keep="first")
    counts.duplicates = int(dup.sum())
    if counts.duplicates:
        examples = ", ".join(
            f"{u}/{i} (line {ln})"
            for u, i, ln in df.loc[dup, ["user_id", "item_id", "line"]]
            .head(3)
            .itertuples(index=False)
        )
        logger.warning(
            "%s domain (%s): %d duplicate user-item %s dropped, the first kept; e.g. %s",
            role,
            source.label,
            counts.duplicates,
            ids.records,
            examples,
        )
        df = df[~dup]

    per_user = df["user_id"].map(df["user_id"].value_counts())
    enough = per_user >= minimum
    kept = df[enough].reset_index(drop=True)
    counts.users_below_min = len(ids.users) - int(kept["user_id"].nunique())
    counts.reviews_of_users_below_min = sum(ids.reviews_per_user) - counts.duplicates - len(kept)
    return kept
