"""The normalised record form every reader yields, whatever the raw layout.

Readers (``dataset_prep.readers``) turn Amazon 2023 / 2018 / 2014 files and generic CSV/TSV files
into these two records; everything downstream (filters, the cross-domain builder) only sees them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Review:
    """One user-item interaction, optionally rated and reviewed."""

    user_id: str
    item_id: str
    rating: float | None  # 1..5 stars; None for implicit feedback
    timestamp: float | None  # seconds since the epoch (or an order position); None if unknown
    text: str  # review body ('' when absent)
    summary: str  # review title / summary ('' when absent)
    line: int  # 1-based line number in the source file, for error messages


@dataclass(frozen=True, slots=True)
class ItemMeta:
    """One item's metadata: the text and image a multimodal encoder will read."""

    item_id: str
    title: str
    description: str  # description paragraphs (and feature bullets) joined with spaces
    categories: tuple[str, ...]
    image: str  # first image: a URL or a local path ('' when the item has none)
    line: int
