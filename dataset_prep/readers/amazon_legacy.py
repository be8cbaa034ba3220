"""Amazon review dumps of 2018 and 2014 (McAuley et al.): ``<Category>.json``, ``meta_<Category>.json``.

Both years share the review keys (``reviewerID``, ``asin``, ``overall``, ``unixReviewTime`` in
seconds). Their metadata differs: 2018 has ``feature``/``category``/``imageURL`` lists; 2014 has a
``description`` string, ``categories`` as a list of category paths and one ``imUrl``, and its lines
are Python literals rather than JSON, so these readers fall back to ``ast.literal_eval``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from pathlib import Path

from dataset_prep.readers.fields import (
    FieldError,
    optional_str,
    rating,
    required_id,
    show,
    text_parts,
    timestamp,
    unique,
)
from dataset_prep.readers.lines import OnBytes, read_json_lines
from dataset_prep.records import ItemMeta, Review


def parse_review(obj: dict, line: int) -> Review:
    return Review(
        user_id=required_id(obj, "reviewerID"),
        item_id=required_id(obj, "asin"),
        rating=rating(obj.get("overall"), "overall"),
        timestamp=timestamp(obj.get("unixReviewTime"), "unixReviewTime"),
        text=optional_str(obj, "reviewText"),
        summary=optional_str(obj, "summary"),
        line=line,
    )


def parse_item_2018(obj: dict, line: int) -> ItemMeta:
    high_res = text_parts(obj.get("imageURLHighRes"), "imageURLHighRes")
    images = high_res or text_parts(obj.get("imageURL"), "imageURL")  # both are often empty
    return ItemMeta(
        item_id=required_id(obj, "asin"),
        title=optional_str(obj, "title"),
        description=" ".join(
            text_parts(obj.get("description"), "description")
            + text_parts(obj.get("feature"), "feature")
        ),
        categories=unique(text_parts(obj.get("category"), "category")),
        image=images[0] if images else "",
        line=line,
    )


def category_paths(value: object) -> tuple[str, ...]:
    """2014 ``categories``: a list of paths (lists) from the top level down → one flat list."""
    if value is None:
        return ()
    if type(value) is not list:
        raise FieldError("categories", f"expected a list of lists, got {show(value)}")
    return unique(chain.from_iterable(text_parts(path, "categories") for path in value))


def parse_item_2014(obj: dict, line: int) -> ItemMeta:
    return ItemMeta(
        item_id=required_id(obj, "asin"),
        title=optional_str(obj, "title"),
        description=" ".join(text_parts(obj.get("description"), "description")),
        categories=category_paths(obj.get("categories")),
        image=optional_str(obj, "imUrl").strip(),
        line=line,
    )


def read_reviews(
    path: str | Path, *, max_bad_lines: int = 100, on_bytes: OnBytes = None
) -> Iterator[Review]:
    """Reviews of either year (the keys are the same)."""
    return read_json_lines(
        path, parse_review, max_bad_lines=max_bad_lines, on_bytes=on_bytes, python_literals=True
    )


def read_items_2018(
    path: str | Path, *, max_bad_lines: int = 100, on_bytes: OnBytes = None
) -> Iterator[ItemMeta]:
    return read_json_lines(
        path, parse_item_2018, max_bad_lines=max_bad_lines, on_bytes=on_bytes, python_literals=True
    )


def read_items_2014(
    path: str | Path, *, max_bad_lines: int = 100, on_bytes: OnBytes = None
) -> Iterator[ItemMeta]:
    return read_json_lines(
        path, parse_item_2014, max_bad_lines=max_bad_lines, on_bytes=on_bytes, python_literals=True
    )
