"""Readers for raw review dumps: each layout becomes a stream of ``Review`` / ``ItemMeta`` records.

Layouts: Amazon 2023 (``.jsonl``), Amazon 2018 and 2014 (``.json``; 2014 metadata is written as
Python literals) and generic CSV/TSV (``"csv"``). Any of them may be gzipped. ``layout=None``
guesses the layout from the first lines. Bad lines are skipped and counted; more than
``max_bad_lines`` of them (or a truncated gzip stream) is a ``DataError``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from dataset_prep.errors import DataError
from dataset_prep.readers import amazon2023, amazon_legacy, tabular
from dataset_prep.readers.lines import OnBytes, load_object, peek_lines
from dataset_prep.records import ItemMeta, Review

LAYOUTS = ("amazon2023", "amazon2018", "amazon2014", "csv")  # "csv" covers .csv and .tsv

_REVIEW_READERS = {
    "amazon2023": amazon2023.read_reviews,
    "amazon2018": amazon_legacy.read_reviews,
    "amazon2014": amazon_legacy.read_reviews,
}
_ITEM_READERS = {
    "amazon2023": amazon2023.read_items,
    "amazon2018": amazon_legacy.read_items_2018,
    "amazon2014": amazon_legacy.read_items_2014,
}
# Keys only one of the two legacy years has (reviewTime, reviewerName, asin... are in both).
_KEYS_2014 = {"imUrl", "categories", "helpful", "salesRank", "related"}
_KEYS_2018 = {
    "imageURL",
    "imageURLHighRes",
    "category",
    "feature",
    "main_cat",
    "also_buy",
    "also_view",
    "vote",
    "style",
    "verified",
    "image",
}
PEEK_LINES = 10


def detect_layout(path: str | Path) -> str:
    """One of ``LAYOUTS``, told from the keys (or the header) of the first non-empty lines."""
    lines = peek_lines(path, PEEK_LINES)
    if not lines:
        raise DataError(path, None, None, "empty file: cannot tell its layout")
    if not lines[0].lstrip().startswith("{"):
        if "\t" in lines[0] or "," in lines[0]:
            return "csv"
        raise DataError(
            path,
            1,
            None,
            f"cannot tell the layout: not JSON and not a CSV/TSV header: {lines[0][:80]!r}",
        )
    keys: set[str] = set()
    for text in lines:
        try:
            obj = load_object(text, python_literals=True)
        except ValueError:
            continue  # a bad line among the first few is the readers' business
        if type(obj) is dict:
            keys.update(str(key) for key in obj)
    if "parent_asin" in keys or {"user_id", "rating"} <= keys:
        return "amazon2023"
    if "asin" in keys or "reviewerID" in keys:
        # Reviews read the same for both years, so a file without telling keys is read as 2018.
        return "amazon2014" if keys & _KEYS_2014 and not keys & _KEYS_2018 else "amazon2018"
    raise DataError(
        path,
        None,
        None,
        f"cannot tell the layout from the keys {sorted(keys)}: expected Amazon 2023 (parent_asin, "
        "user_id, rating), Amazon 2018/2014 (asin, reviewerID) or a CSV/TSV header row",
    )


def _layout(
    path: str | Path, layout: str | None, columns: Mapping | None, where: Mapping | None
) -> str:
    layout = layout or detect_layout(path)
    if layout not in LAYOUTS:
        raise DataError(path, None, None, f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if layout != "csv" and (columns or where):
        raise DataError(
            path, None, None, f"columns/where only apply to CSV/TSV files, this is {layout}"
        )
    return layout


def read_reviews(
    path: str | Path,
    layout: str | None = None,
    *,
    max_bad_lines: int = 100,
    columns: Mapping | None = None,
    where: Mapping | None = None,
    on_bytes: OnBytes = None,
    as_tuples: bool = False,
) -> Iterator[Review] | Iterator[tuple]:
    """Stream the reviews (interactions) of one file.

    ``as_tuples``: plain tuples in ``Review``'s field order instead of ``Review`` objects — the
    same records, for loops over millions of lines (Amazon 2023 files then skip the objects).
    """
    layout = _layout(path, layout, columns, where)
    if as_tuples and layout == "amazon2023":
        return amazon2023.read_review_fields(path, max_bad_lines=max_bad_lines, on_bytes=on_bytes)
    if layout == "csv":
        reviews = tabular.read_reviews(
            path, max_bad_lines=max_bad_lines, columns=columns, where=where, on_bytes=on_bytes
        )
    else:
        reviews = _REVIEW_READERS[layout](path, max_bad_lines=max_bad_lines, on_bytes=on_bytes)
    if as_tuples:
        return (
            (r.user_id, r.item_id, r.rating, r.timestamp, r.text, r.summary, r.line)
            for r in reviews
        )
    return reviews


def read_items(
    path: str | Path,
    layout: str | None = None,
    *,
    max_bad_lines: int = 100,
    columns: Mapping | None = None,
    where: Mapping | None = None,
    on_bytes: OnBytes = None,
) -> Iterator[ItemMeta]:
    """Stream the item metadata of one file."""
    layout = _layout(path, layout, columns, where)
    if layout == "csv":
        return tabular.read_items(
            path, max_bad_lines=max_bad_lines, columns=columns, where=where, on_bytes=on_bytes
        )
    return _ITEM_READERS[layout](path, max_bad_lines=max_bad_lines, on_bytes=on_bytes)


__all__ = [
    "LAYOUTS",
    "DataError",
    "ItemMeta",
    "Review",
    "detect_layout",
    "read_items",
    "read_reviews",
]
