"""The GENERATED demo's hidden taste model: items' attributes, quality and popularity, how many
reviews each user writes, which items they pick and the stars they give (dataset_prep/demo.py
describes the model)."""

from __future__ import annotations

import numpy as np

from dataset_prep.demo_vocabulary import K

# Rating model (tuned so ratings skew to 4-5 stars, like Amazon's).
MU, ALPHA, ALPHA_DISLIKE, GAMMA = 4.2, 0.7, 1.5, 1.0
SD_ITEM, SD_USER, SD_NOISE = 0.35, 0.5, 0.7
LETDOWN_SHARE, LETDOWN_DROP = 0.05, 3.0
SD_TASTE_NOISE = 0.45  # music taste = M @ movie taste + this noise
LOW_ACTIVITY_SHARE = 0.07  # users of a domain with fewer than 20 reviews there
ACTIVITY_FLOOR, ACTIVITY_TAIL = 23, 4.0  # the others: floor + exponential tail, capped at 40
# Users are ranked against every item of a domain in blocks of this many rows, so a large
# ``scale`` needs memory for a block, not for all users x items.
USER_BLOCK = 2048
# How a user's items are drawn: exact (a pass over every item) | grouped (by attribute pattern)
SAMPLERS = ("exact", "grouped")


def all_but_a_share(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """A mask that is False for a fixed count (at least one) of random positions."""
    mask = np.ones(n, dtype=bool)
    mask[rng.choice(n, size=max(1, round(share * n)), replace=False)] = False
    return mask


def mixing_matrix(rng: np.random.Generator) -> np.ndarray:
    """Movie taste -> music taste: mostly the same attribute, partly a neighbouring one."""
    m = 0.8 * np.eye(K) + 0.35 * np.eye(K)[rng.permutation(K)]
    m += rng.normal(0.0, 0.08, size=(K, K))
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def reviews_per_user(rng: np.random.Generator, n: int, activity: float) -> np.ndarray:
    """Reviews per user in one domain: mostly 20-40 (long-tailed), a share of 8-19, all times
    ``activity``.

    The floor sits a few reviews above 20 so most active users still have 20 after the builder
    drops short reviews and items without description or image.
    """
    counts = ACTIVITY_FLOOR + np.minimum(
        rng.exponential(ACTIVITY_TAIL, n).astype(int), 40 - ACTIVITY_FLOOR
    )
    low = rng.random(n) < LOW_ACTIVITY_SHARE
    counts[low] = rng.integers(8, 20, size=int(low.sum()))
    return np.rint(counts * activity).astype(int)


def max_reviews_per_user(activity: float) -> int:
    """The most reviews :func:`reviews_per_user` gives one user."""
    return int(np.rint(40 * activity))


def draw_items(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Hidden item model: primary/secondary attribute, attribute vector, quality, popularity."""
    weights = rng.dirichlet(np.full(K, 8.0))  # some genres more common than others
    primary = rng.choice(K, size=n, p=weights)
    secondary = (primary + rng.integers(1, K, size=n)) % K
    has_secondary = rng.random(n) < 0.55
    attrs = np.zeros((n, K))
    attrs[np.arange(n), primary] = 1.0
    attrs[np.arange(n)[has_secondary], secondary[has_secondary]] = 0.5
    return {
        "primary": primary,
        "secondary": np.where(has_secondary, secondary, -1),
        "attrs": attrs,
        "bias": rng.normal(0.0, SD_ITEM, n),
        "log_pop": rng.normal(0.0, 0.8, n),
    }


def draw_reviews(
    rng: np.random.Generator,
    taste: np.ndarray,
    user_bias: np.ndarray,
    items: dict[str, np.ndarray],
    activity: float,
    sampler: str = "exact",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick each user's items and rate them. ``sampler``: ``exact`` (Gumbel top-k over every
    item = sampling without replacement; users x items work) or ``grouped`` (the same
    distribution drawn through the items' attribute patterns, for catalogues of 100k+ items)."""
    if sampler == "exact":
        users, chosen, fit = choose_exact(rng, taste, items, activity)
    elif sampler == "grouped":
        users, chosen, fit = choose_grouped(rng, taste, items, activity)
    else:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    # Disliking an item hurts more than liking it helps; a few copies just disappoint. Both
    # give the J-shaped star histogram of real reviews (many 5s, then 1s before 2s).
    raw = (
        MU
        + items["bias"][chosen]
        + user_bias[users]
        + ALPHA * fit
        + ALPHA_DISLIKE * np.minimum(fit, 0.0)
        + rng.normal(0.0, SD_NOISE, len(users))
        - LETDOWN_DROP * (rng.random(len(users)) < LETDOWN_SHARE)
    )
    ratings = np.clip(np.rint(raw), 1, 5).astype(int)
    return users, chosen, ratings


def choose_exact(rng, taste, items, activity):
    """(user, item, affinity) rows: each user's items by Gumbel top-k over every item."""
    n_users, n_items = len(taste), len(items["bias"])
    top = min(n_items, max_reviews_per_user(activity))
    order = np.empty((n_users, top), dtype=np.int64)
    top_affinity = np.empty((n_users, top))
    # Block by block, keeping each user's best ``top`` items: the Gumbel draws come in the same
    # sequence as one draw of the whole matrix, so the block size does not change the data.
    for lo in range(0, n_users, USER_BLOCK):
        hi = min(n_users, lo + USER_BLOCK)
        affinity = taste[lo:hi] @ items["attrs"].T
        scores = GAMMA * affinity + items["log_pop"] + rng.gumbel(size=(hi - lo, n_items))
        order[lo:hi] = np.argsort(-scores, axis=1, kind="stable")[:, :top]
        top_affinity[lo:hi] = np.take_along_axis(affinity, order[lo:hi], axis=1)
    counts = np.minimum(reviews_per_user(rng, n_users, activity), n_items)
    take = np.arange(top)[None, :] < counts[:, None]
    return np.repeat(np.arange(n_users), counts), order[take], top_affinity[take]


def choose_grouped(rng, taste, items, activity):
    """(user, item, affinity) rows drawn from the same distribution as :func:`choose_exact`
    without touching every item per user: an item's weight ``exp(GAMMA * <theta, a_i>) *
    pop_i`` depends on the user only through its attribute pattern (at most K * K of them),
    so a draw picks a pattern (weight: ``exp(GAMMA * affinity)`` times the pattern's total
    popularity), then an item of it by popularity. Draws are with replacement, repeats dropped
    (a user's 20-80 items out of thousands per pattern rarely repeat; a user left short by
    repeats keeps fewer items)."""
    n_users, n_items = len(taste), len(items["bias"])
    counts = np.minimum(reviews_per_user(rng, n_users, activity), n_items)
    draws = int(np.ceil(1.25 * counts.max())) + 8
    patterns, pattern_of = np.unique(items["attrs"], axis=0, return_inverse=True)
    pattern_of = pattern_of.ravel()
    # items sorted by pattern; within pattern p the cumulative popularity runs over [p, p + 1)
    by_pattern = np.argsort(pattern_of, kind="stable")
    pop = np.exp(items["log_pop"][by_pattern])
    starts = np.searchsorted(pattern_of[by_pattern], np.arange(len(patterns)))
    sizes = np.diff([*starts, len(pop)])
    totals = np.add.reduceat(pop, starts)
    within = np.cumsum(pop) - np.repeat(np.cumsum(totals) - totals, sizes)
    cumulative = pattern_of[by_pattern] + within / np.repeat(totals, sizes)
    chosen_rows, users_rows, fit_rows = [], [], []
    for lo in range(0, n_users, USER_BLOCK):
        hi = min(n_users, lo + USER_BLOCK)
        affinity = taste[lo:hi] @ patterns.T  # [users, patterns]
        weight = np.cumsum(np.exp(GAMMA * affinity) * totals, axis=1)
        u = rng.random((hi - lo, draws)) * weight[:, -1:]
        pattern = np.minimum((weight[:, None, :] < u[..., None]).sum(-1), len(patterns) - 1)
        at = np.searchsorted(cumulative, pattern + rng.random(pattern.shape))
        item = by_pattern[np.minimum(at, n_items - 1)]
        # keep each user's first occurrence of an item, then the first ``counts`` of those
        order = np.argsort(item, axis=1, kind="stable")
        ordered = np.take_along_axis(item, order, axis=1)
        repeat = np.zeros_like(ordered, dtype=bool)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        first = np.empty_like(repeat)
        np.put_along_axis(first, order, ~repeat, axis=1)
        keep = first & (np.cumsum(first, axis=1) <= counts[lo:hi, None])
        rows, cols = np.nonzero(keep)
        users_rows.append(rows + lo)
        chosen_rows.append(item[rows, cols])
        fit_rows.append(affinity[rows, pattern_of[item[rows, cols]]])
    return np.concatenate(users_rows), np.concatenate(chosen_rows), np.concatenate(fit_rows)
