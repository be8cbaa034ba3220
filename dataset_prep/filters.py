"""The filter settings of a build and the per-record checks they stand for.

The MuSiC paper filters Amazon data three ways: reviews shorter than 10 words go, items without a
description or without an image go, and users with fewer than 20 reviews (per domain) go. Those
are the defaults for Amazon sources (:data:`PAPER_FILTERS`). Generic CSV/TSV interaction logs
usually carry no review text and no images, so for them the default is to filter nothing
(:data:`NO_FILTERS`). Every setting can be overridden.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from dataset_prep.records import ItemMeta, Review

TABULAR_LAYOUTS = frozenset({"csv", "tsv"})


@dataclass(frozen=True)
class FilterSettings:
    """What a build keeps. ``0``/``False``/``1`` mean "this filter is off"."""

    min_review_words: int = 10  # words in summary + text
    require_description: bool = True
    require_image: bool = True
    min_user_reviews: int = 20  # kept reviews per user, per domain

    def __post_init__(self) -> None:
        if self.min_review_words < 0:
            raise ValueError(f"min_review_words must be >= 0, got {self.min_review_words}")
        if self.min_user_reviews < 1:
            raise ValueError(f"min_user_reviews must be >= 1, got {self.min_user_reviews}")

    def with_overrides(self, **overrides: int | bool | None) -> FilterSettings:
        """A copy with the given settings changed; ``None`` values leave a setting as it is."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        parts = []
        if self.min_review_words:
            parts.append(f"reviews >= {self.min_review_words} words")
        if self.require_description:
            parts.append("items with a description")
        if self.require_image:
            parts.append("items with an image")
        if self.min_user_reviews > 1:
            parts.append(f"users >= {self.min_user_reviews} reviews per domain")
        return ", ".join(parts) if parts else "no filters"


PAPER_FILTERS = FilterSettings()
NO_FILTERS = FilterSettings(
    min_review_words=0, require_description=False, require_image=False, min_user_reviews=1
)


def default_filters(layout: str | None) -> FilterSettings:
    """The paper's filters for Amazon layouts, none for tabular (CSV/TSV) sources."""
    return NO_FILTERS if layout in TABULAR_LAYOUTS else PAPER_FILTERS


def review_words(review: Review) -> int:
    """Words (whitespace-separated) in the review's summary and body together."""
    return len(review.summary.split()) + len(review.text.split())


def review_long_enough(review: Review, settings: FilterSettings) -> bool:
    return settings.min_review_words <= 0 or review_words(review) >= settings.min_review_words


def item_failures(item: ItemMeta, has_image: bool, settings: FilterSettings) -> tuple[str, ...]:
    """Names of the item filters ``item`` fails (empty when it is kept).

    ``has_image`` is decided by the caller: a URL counts, a local path counts only when the file
    exists.
    """
    failed = []
    if settings.require_description and not item.description.strip():
        failed.append("no_description")
    if settings.require_image and not has_image:
        failed.append("no_image")
    return tuple(failed)
