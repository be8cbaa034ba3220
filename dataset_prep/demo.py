"""Generate the synthetic ``movie_music_demo`` raw files in the Amazon Reviews 2023 layout.

The files are GENERATED, not real Amazon data. They exist so the whole pipeline (builder,
feature extraction, training, evaluation) can run offline in seconds, and so that cross-domain
transfer has something to learn: a hidden taste model is shared by both domains.

Hidden model (all draws from one ``numpy.random.default_rng(seed)``):

- K latent attributes (moods/genres shared by movies and music, see ``ATTRIBUTES``).
- Each user has a movie taste ``theta_u ~ N(0, I)``; the music taste is a fixed mixing
  ``M @ theta_u`` plus a little per-user noise, so the movie history predicts music taste well but
  not perfectly. A user's rating generosity ``b_u`` is shared across domains, also with noise.
- Each item has a sparse attribute vector ``a_i`` (a primary attribute, often a secondary one),
  a quality bias ``b_i`` and a popularity.
- A user reviews ``n_u`` items drawn without replacement with probability rising with
  popularity and affinity ``<theta, a_i>`` (so what a user chose is itself informative).
- ``rating = clip(round(mu + b_i + b_u + alpha * f + alpha_dislike * min(f, 0) + noise), 1, 5)``
  with ``f = <theta, a_i>``, and a few "let-down" reviews a few stars lower: skewed to 4-5 stars
  with a J-shaped histogram like Amazon's.
- Titles, descriptions, categories and images are built from the item's attributes; review text
  from the item's attributes and the rating. Some reviews are short, some items lack a
  description or an image, some users have fewer than 20 reviews, so the paper's filters have
  something to drop.

This module draws the users and writes the files; the parts live beside it: the attributes and
wording in ``demo_vocabulary``, the taste model and draws in ``demo_taste``, the item metadata,
review records and images in ``demo_pages``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dataset_prep.demo_pages import (
    IMAGE_SIZE,
    NO_DESCRIPTION_SHARE,
    NO_IMAGE_SHARE,
    SHORT_REVIEW_SHARE,
    item_images,
    meta_records,
    review_records,
)
from dataset_prep.demo_taste import (
    ALPHA,
    ALPHA_DISLIKE,
    LETDOWN_DROP,
    LETDOWN_SHARE,
    LOW_ACTIVITY_SHARE,
    MU,
    SAMPLERS,
    SD_TASTE_NOISE,
    SD_USER,
    all_but_a_share,
    draw_items,
    draw_reviews,
    max_reviews_per_user,
    mixing_matrix,
)
from dataset_prep.demo_vocabulary import ATTRIBUTES, AUX_CATEGORY, TARGET_CATEGORY, K
from dataset_prep.layout import DEMO_DATASET

__all__ = ["AUX_CATEGORY", "TARGET_CATEGORY", "generate_demo_raw"]

# Base counts at scale=1.0.
N_OVERLAP, N_SIDE, N_AUX_ONLY = 1500, 1200, 800
N_MOVIES, N_MUSIC = 1000, 800

_ALNUM = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
_USER_CHARS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))


def _ids(
    rng: np.random.Generator, n: int, prefix: str, chars: np.ndarray, length: int, taken: set[str]
) -> list[str]:
    """Draw ``n`` unique ids ``prefix + length chars`` not in ``taken`` (and add them to it)."""
    out: list[str] = []
    while len(out) < n:
        draws = rng.choice(chars, size=(n - len(out), length))
        for row in draws:
            s = prefix + "".join(row)
            if s not in taken:
                taken.add(s)
                out.append(s)
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp name beside ``path`` and rename, so no half file is ever visible."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_jsonl_gz(path: Path, records: list[dict]) -> None:
    """Gzip JSON lines with mtime=0 and a fixed inner name, so a seed gives identical bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(
        filename=path.name[:-3], mode="wb", fileobj=buf, mtime=0, compresslevel=6
    ) as gz:
        gz.write("".join(json.dumps(r) + "\n" for r in records).encode("utf-8"))
    _atomic_write(path, buf.getvalue())


def _png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _generated_md(seed: int, scale: float, extra_args: str, summary: dict) -> str:
    attrs = ", ".join(a[0] for a in ATTRIBUTES)
    return f"""# {DEMO_DATASET}: GENERATED data, not real Amazon reviews

Every file in this folder is **synthetic**. It was written by `dataset_prep/demo.py`
(`generate_demo_raw(raw_dir, seed={seed}, scale={scale}{extra_args})`) in the Amazon Reviews 2023 raw layout
(`{AUX_CATEGORY}` = auxiliary domain, `{TARGET_CATEGORY}` = target domain) so the pipeline can
run offline. Users, items, ASINs, names, texts and images are invented; any resemblance to real
products is accidental. Do not report results on it as results on Amazon data.

## How it was made
One `numpy.random.default_rng({seed})` drives everything; the same seed gives byte-identical files.

- {K} hidden attributes shared by both domains: {attrs}.
- Users: {summary["users"]["overlap"]} overlapping (reviews in both domains),
  {summary["users"]["side"]} side (music only), {summary["users"]["aux_only"]} auxiliary-only
  (movies only). Movie taste `theta_u ~ N(0, I)`; music taste = a fixed mixing matrix times
  `theta_u` plus noise (sd {SD_TASTE_NOISE}); rating bias `b_u` shared across domains with noise.
- Items: {summary["items"][AUX_CATEGORY]} movies, {summary["items"][TARGET_CATEGORY]} music items;
  each has a primary attribute (often a secondary one at half weight), a quality bias and a
  popularity.
- Each user reviews items sampled without replacement with probability rising with popularity and
  affinity `f = <theta, a_i>`; rating = clip(round({MU} + b_i + b_u + {ALPHA} * f +
  {ALPHA_DISLIKE} * min(f, 0) + noise), 1, 5), and {LETDOWN_SHARE:.0%} of reviews are
  "let-downs" {LETDOWN_DROP:g} stars lower (pure noise).
- Item titles, descriptions, features and categories (genres) are built from the item's
  attributes; images ({IMAGE_SIZE}x{IMAGE_SIZE} PNG in `images/`) take the primary attribute's
  colour with stripes of the secondary one; review text mixes mood words of the item's attributes
  with sentiment words that follow the rating.
- For the paper's filters: about {SHORT_REVIEW_SHARE:.0%} of reviews are under 10 words,
  {NO_DESCRIPTION_SHARE:.0%} of items have no description, {NO_IMAGE_SHARE:.0%} no image, and
  about {LOW_ACTIVITY_SHARE:.0%} of users have fewer than 20 reviews in a domain.

Reviews written: {summary["reviews"][AUX_CATEGORY]} ({AUX_CATEGORY}),
{summary["reviews"][TARGET_CATEGORY]} ({TARGET_CATEGORY}).
"""


def generate_demo_raw(
    raw_dir: Path,
    seed: int = 0,
    scale: float = 1.0,
    *,
    activity: float = 1.0,
    images: bool = True,
    users: tuple[int, int, int] | None = None,
    items: tuple[int, int] | None = None,
    sampler: str = "exact",
) -> dict:
    """Write the synthetic demo's raw files into ``raw_dir`` and return a summary.

    Files: ``<Category>.jsonl.gz`` and ``meta_<Category>.jsonl.gz`` for ``AUX_CATEGORY`` and
    ``TARGET_CATEGORY``, ``images/<parent_asin>.png`` and ``GENERATED.md``. ``scale`` multiplies
    the user and item counts (1.0: ~3,500 users, ~1,800 items, ~120k reviews); ``activity``
    multiplies the reviews per user (the population stays, only the review files grow).
    ``images=False`` writes no image files: the meta files link each image by URL instead, and the
    other files differ from those of ``images=True`` (the pixels' random draws are skipped).
    ``users`` = (overlapping, side, auxiliary-only) and ``items`` = (auxiliary, target) set those
    counts outright instead of ``scale`` (a data set of another's shape, e.g. the paper's);
    ``sampler="grouped"`` draws each user's items without a pass over every item (see
    :func:`choose_grouped`; needed for catalogues of 100k+ items, different files).
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if activity <= 0:
        raise ValueError(f"activity must be positive, got {activity}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    started = time.perf_counter()
    raw_dir = Path(raw_dir)
    (raw_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    n_overlap, n_side, n_aux = users or (
        max(10, round(n * scale)) for n in (N_OVERLAP, N_SIDE, N_AUX_ONLY)
    )
    # Enough items that the most active user still has a choice.
    fewest_items = max(80, 2 * max_reviews_per_user(activity))
    n_aux_items, n_target_items = items or (round(N_MOVIES * scale), round(N_MUSIC * scale))
    n_items = {
        AUX_CATEGORY: max(fewest_items, n_aux_items),
        TARGET_CATEGORY: max(fewest_items, n_target_items),
    }

    # Users: [overlap | aux-only] review movies, [overlap | side] review music.
    n_users = n_overlap + n_side + n_aux
    taken: set[str] = set()
    user_ids = _ids(rng, n_users, "AE", _USER_CHARS, 26, taken)
    theta = rng.normal(0.0, 1.0, (n_users, K))
    music_taste = theta @ mixing_matrix(rng).T + rng.normal(0.0, SD_TASTE_NOISE, (n_users, K))
    movie_bias = rng.normal(0.0, SD_USER, n_users)
    music_bias = 0.8 * movie_bias + rng.normal(0.0, 0.6 * SD_USER, n_users)
    movie_users = np.r_[np.arange(n_overlap), np.arange(n_overlap + n_side, n_users)]
    music_users = np.arange(n_overlap + n_side)

    summary: dict = {
        "name": DEMO_DATASET,
        "generated": True,
        "seed": seed,
        "scale": scale,
        "users": {"overlap": n_overlap, "side": n_side, "aux_only": n_aux},
        "items": {},
        "reviews": {},
        "short_reviews": {},
        "items_without_description": {},
        "items_without_image": {},
        "users_under_20_reviews": {},
    }
    written_images: set[str] = set()
    for category, domain_users, taste, bias in (
        (AUX_CATEGORY, movie_users, theta, movie_bias),
        (TARGET_CATEGORY, music_users, music_taste, music_bias),
    ):
        n = n_items[category]
        item_model = draw_items(rng, n)
        asins = _ids(rng, n, "B0", _ALNUM, 8, taken)
        variants = _ids(rng, n, "B0", _ALNUM, 8, taken)
        local_users, chosen, ratings = draw_reviews(
            rng, taste[domain_users], bias[domain_users], item_model, activity, sampler
        )
        has_image = all_but_a_share(rng, n, NO_IMAGE_SHARE)
        meta, no_desc = meta_records(
            rng, category, item_model, asins, ratings, chosen, has_image, images
        )
        reviews, n_short = review_records(
            rng,
            category,
            item_model,
            asins,
            variants,
            [user_ids[u] for u in domain_users],
            local_users,
            chosen,
            ratings,
        )
        if images:
            pixels = item_images(rng, item_model, category == AUX_CATEGORY)
            for i in np.flatnonzero(has_image).tolist():
                _atomic_write(raw_dir / "images" / f"{asins[i]}.png", _png_bytes(pixels[i]))
                written_images.add(f"{asins[i]}.png")
        _write_jsonl_gz(raw_dir / f"meta_{category}.jsonl.gz", meta)
        _write_jsonl_gz(raw_dir / f"{category}.jsonl.gz", reviews)

        summary["items"][category] = n
        summary["reviews"][category] = len(reviews)
        summary["short_reviews"][category] = n_short
        summary["items_without_description"][category] = no_desc
        summary["items_without_image"][category] = int((~has_image).sum())
        per_user = np.bincount(local_users, minlength=len(domain_users))
        summary["users_under_20_reviews"][category] = int((per_user < 20).sum())

    # A rerun with another seed must not leave the previous run's images behind.
    for stale in (raw_dir / "images").glob("B0*.png"):
        if stale.name not in written_images:
            stale.unlink()
    summary["reviews_total"] = sum(summary["reviews"].values())
    # Only what differs from the defaults, so the default call's GENERATED.md stays as it was.
    extra_args = (
        (f", activity={activity}" if activity != 1.0 else "")
        + ("" if images else ", images=False")
        + (f", users={tuple(users)}" if users else "")
        + (f", items={tuple(items)}" if items else "")
        + (f", sampler={sampler!r}" if sampler != "exact" else "")
    )
    markdown = _generated_md(seed, scale, extra_args, summary)
    _atomic_write(raw_dir / "GENERATED.md", markdown.encode("utf-8"))
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary
