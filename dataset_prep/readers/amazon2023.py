"""Amazon Reviews 2023 (Hou et al. 2024): ``<Category>.jsonl`` reviews, ``meta_<Category>.jsonl``.

Items are keyed by ``parent_asin`` (the product, not one of its variants); timestamps are in ms.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dataset_prep.readers.fields import (
    MAX_TIMESTAMP,
    FieldError,
    optional_str,
    rating,
    required_id,
    show,
    text_parts,
    unique,
)
from dataset_prep.readers.fields import timestamp as timestamp_field
from dataset_prep.readers.lines import OnBytes, read_json_lines
from dataset_prep.records import ItemMeta, Review

IMAGE_SIZES = ("large", "hi_res", "thumb")  # preference order: large is ~500px, enough to encode


def review_fields(obj: dict, line: int) -> tuple:
    """``parse_review``'s fields as a tuple, in ``Review``'s order (the builder's hot path)."""
    # The usual record, checked inline; anything else takes the general path below, which
    # accepts or rejects it (with the same first error) exactly as it always did.
    get = obj.get
    user, item, stars = get("user_id"), get("parent_asin"), get("rating")
    timestamp, text, title = get("timestamp"), get("text"), get("title")
    if (
        type(user) is str
        and user
        and type(item) is str
        and item
        and (type(stars) is float or type(stars) is int)
        and 1 <= stars <= 5
        and type(timestamp) is int
        and 0 <= timestamp <= MAX_TIMESTAMP * 1000
        and type(text) is str
        and type(title) is str
    ):
        return (user, item, float(stars), float(timestamp) / 1000, text, title, line)
    return (
        required_id(obj, "user_id"),
        required_id(obj, "parent_asin", "asin"),
        rating(stars, "rating"),
        timestamp_field(timestamp, "timestamp", per_second=1000),
        optional_str(obj, "text"),
        optional_str(obj, "title"),
        line,
    )


def parse_review(obj: dict, line: int) -> Review:
    return Review(*review_fields(obj, line))


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


def read_review_fields(
    path: str | Path, *, max_bad_lines: int = 100, on_bytes: OnBytes = None
) -> Iterator[tuple]:
    """Like ``read_reviews``, as tuples in ``Review``'s field order (no record objects)."""
    return read_json_lines(path, review_fields, max_bad_lines=max_bad_lines, on_bytes=on_bytes)


def read_items(
    path: str | Path, *, max_bad_lines: int = 100, on_bytes: OnBytes = None
) -> Iterator[ItemMeta]:
    return read_json_lines(path, parse_item, max_bad_lines=max_bad_lines, on_bytes=on_bytes)
