"""Amazon Reviews 2023 (Hou et al. 2024): ``<Category>.jsonl`` reviews, ``meta_<Category>.jsonl``.

Items are keyed by ``parent_asin`` (the product, not one of its variants); timestamps are in ms.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dataset_prep.readers.fields import (
    FieldError,
    optional_number,
    optional_str,
    rating,
    required_id,
    show,
    text_parts,
    unique,
)
from dataset_prep.readers.lines import OnBytes, read_json_lines
from dataset_prep.records import ItemMeta, Review

IMAGE_SIZES = ("large", "hi_res", "thumb")  # preference order: large is ~500px, enough to encode


def parse_review(obj: dict, line: int) -> Review:
    timestamp = optional_number(obj.get("timestamp"), "timestamp")
    return Review(
        user_id=required_id(obj, "user_id"),
        item_id=required_id(obj, "parent_asin", "asin"),
        rating=rating(obj.get("rating"), "rating"),
        timestamp=None if timestamp is None else timestamp / 1000,
        text=optional_str(obj, "text"),
        summary=optional_str(obj, "title"),
        line=line,
    )


def first_image(images: object) -> str:
    """The first image's URL from ``images``, a list of {thumb, large, hi_res, variant} dicts."""
    if not images:
        return ""
    first = images[0] if type(images) is list else None
    if type(first) is not dict:
        raise FieldError("images", f"expected a list of dicts, got {show(images)}")
    return next((url for size in IMAGE_SIZES if type(url := first.get(size)) is str and url), "")


def parse_item(obj: dict, line: int) -> ItemMeta:
    main_category = optional_str(obj, "main_category")
    return ItemMeta(
        item_id=required_id(obj, "parent_asin"),
        title=optional_str(obj, "title"),
        description=" ".join(
            text_parts(obj.get("description"), "description")
            + text_parts(obj.get("features"), "features")
        ),
        categories=unique(
            text_parts(main_category, "main_category")
            + text_parts(obj.get("categories"), "categories")
        ),
        image=first_image(obj.get("images")),
        line=line,
    )


def read_reviews(
    path: str | Path, *, max_bad_lines: int = 100, on_bytes: OnBytes = None
) -> Iterator[Review]:
    return read_json_lines(path, parse_review, max_bad_lines=max_bad_lines, on_bytes=on_bytes)


def read_items(
    path: str | Path, *, max_bad_lines: int = 100, on_bytes: OnBytes = None
) -> Iterator[ItemMeta]:
    return read_json_lines(path, parse_item, max_bad_lines=max_bad_lines, on_bytes=on_bytes)
