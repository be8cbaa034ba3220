"""What the GENERATED demo's hidden model looks like on the page: item metadata (titles,
descriptions, genres), review records (text whose mood words and sentiment follow the item and
the stars) and item images (colours of the item's attributes)."""

from __future__ import annotations

import numpy as np

from dataset_prep.demo_taste import all_but_a_share
from dataset_prep.demo_vocabulary import (
    ATTRIBUTES,
    AUX_CATEGORY,
    DESC_TAILS,
    DOMAIN_WORDS,
    FILLER,
    OPENERS,
    REVIEW_TITLES,
    SENTIMENT,
    K,
)

IMAGE_SIZE = 32
# What the paper's filters find to drop. At scale 1.0 about 1,200 of the 1,500 overlapping users
# keep >= 20 reviews in both domains after the review and item filters.
SHORT_REVIEW_SHARE = 0.05
NO_DESCRIPTION_SHARE = 0.02
NO_IMAGE_SHARE = 0.02
# Without local images (``images=False``) the meta files link images by URL, as Amazon's do.
IMAGE_URL = "https://m.media-amazon.com/images/I/{asin}.jpg"


def item_images(
    rng: np.random.Generator, items: dict[str, np.ndarray], is_movie: bool
) -> np.ndarray:
    """Images whose background colour is the primary attribute and stripes the secondary one."""
    s = IMAGE_SIZE
    colours = np.array([a[1] for a in ATTRIBUTES], dtype=float)
    img = np.repeat(colours[items["primary"]][:, None, None, :], s, 1).repeat(s, 2)
    yy, xx = np.mgrid[0:s, 0:s]
    stripes = ((xx + yy) // 4) % 2 == 0
    has_sec = items["secondary"] >= 0
    sec_col = colours[np.where(has_sec, items["secondary"], 0)]
    mask = stripes[None] & has_sec[:, None, None]
    img = np.where(mask[..., None], sec_col[:, None, None, :], img)
    # A domain mark: a black film frame for movies, a grey disc for music.
    if is_movie:
        frame = (xx < 2) | (xx >= s - 2) | (yy < 2) | (yy >= s - 2)
        img[:, frame] = 15.0
    else:
        disc = (xx - s / 2 + 0.5) ** 2 + (yy - s / 2 + 0.5) ** 2 < (s / 6) ** 2
        img[:, disc] = 200.0
    img += rng.normal(0.0, 10.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def meta_records(
    rng: np.random.Generator,
    category: str,
    items: dict[str, np.ndarray],
    asins: list[str],
    ratings: np.ndarray,
    chosen: np.ndarray,
    has_image: np.ndarray,
    local_images: bool,
) -> tuple[list[dict], int]:
    """Item metadata whose title, description, features and categories reveal the attributes."""
    dom = DOMAIN_WORDS[category]
    is_movie = category == AUX_CATEGORY
    n = len(asins)
    genre_col = 2 if is_movie else 3
    counts = np.bincount(chosen, minlength=n)
    sums = np.bincount(chosen, weights=ratings, minlength=n)
    has_desc = all_but_a_share(rng, n, NO_DESCRIPTION_SHARE)
    pick = rng.integers(0, 6, size=(n, 3))
    genre_pick = rng.integers(0, 2, size=(n, 2))
    noun = rng.integers(0, len(dom["nouns"]), n)
    store = rng.integers(0, len(dom["stores"]), n)
    tail = rng.integers(0, len(DESC_TAILS), n)
    year = rng.integers(1950 if is_movie else 1960, 2024, n)
    price = np.round(rng.uniform(4.0, 35.0, n), 2)
    extra_ratings = rng.integers(0, 400, n)  # Amazon's counts include reviews not in the dump
    records = []
    for i in range(n):
        p, sec = int(items["primary"][i]), int(items["secondary"][i])
        moods = ATTRIBUTES[p][4]
        genre = ATTRIBUTES[p][genre_col][genre_pick[i, 0]]
        cats = [dom["root"], genre]
        mood2 = moods[pick[i, 1]]
        if sec >= 0:
            cats.append(ATTRIBUTES[sec][genre_col][genre_pick[i, 1]])
            mood2 = ATTRIBUTES[sec][4][pick[i, 1]]
        title = f"{moods[pick[i, 0]].title()} {dom['nouns'][noun[i]]}"
        if is_movie:
            title = f"The {title}"
        desc = []
        if has_desc[i]:
            mood = moods[pick[i, 2]]
            article = "An" if mood[0] in "aeiou" else "A"
            desc = [
                f"{article} {mood} {genre} {dom['kind']} {DESC_TAILS[tail[i]]}. "
                f"{mood2.capitalize()} in places, and never quite what you expect."
            ]
        # Items nobody reviewed still carry a plausible store rating, from their quality.
        avg = (
            sums[i] / counts[i]
            if counts[i]
            else 3.0 + 2.0 / (1.0 + np.exp(-3.0 * items["bias"][i]))
        )
        image = f"images/{asins[i]}.png" if local_images else IMAGE_URL.format(asin=asins[i])
        records.append(
            {
                "main_category": dom["main"],
                "title": title,
                "average_rating": round(float(avg), 1),
                "rating_number": int(counts[i] + extra_ratings[i]),
                "features": [f"Genre: {genre}", f"Released: {year[i]}"],
                "description": desc,
                "price": float(price[i]),
                "images": (
                    [{"thumb": image, "large": image, "variant": "MAIN", "hi_res": None}]
                    if has_image[i]
                    else []
                ),
                "videos": [],
                "store": dom["stores"][store[i]],
                "categories": cats,
                "details": {"Format": dom["format"], "Release year": int(year[i])},
                "parent_asin": asins[i],
                "bought_together": None,
            }
        )
    return records, int((~has_desc).sum())


def review_records(
    rng: np.random.Generator,
    category: str,
    items: dict[str, np.ndarray],
    asins: list[str],
    variant_asins: list[str],
    user_ids: list[str],
    users: np.ndarray,
    chosen: np.ndarray,
    ratings: np.ndarray,
) -> tuple[list[dict], int]:
    """Reviews whose text mixes the rating's sentiment with the item's mood words."""
    dom = DOMAIN_WORDS[category]
    n = len(users)
    short = rng.random(n) < SHORT_REVIEW_SHARE
    # Short reviews: an opener (<= 4 words) + one 5-word clause -> under 10 words.
    n_clauses = np.where(short, 1, 2 + np.minimum(rng.poisson(1.5, n), 4))
    review_of_clause = np.repeat(np.arange(n), n_clauses)
    c = len(review_of_clause)
    item_c = chosen[review_of_clause]
    # Mood word: mostly the primary attribute, sometimes the secondary, rarely a random one.
    sec = items["secondary"][item_c]
    u = rng.random(c)
    attr = np.where(
        u < 0.65, items["primary"][item_c], np.where(sec >= 0, sec, items["primary"][item_c])
    )
    attr = np.where(u > 0.92, rng.integers(0, K, c), attr)
    mood = rng.integers(0, 6, c)
    aspect = rng.integers(0, len(dom["aspects"]), c)
    # Sentiment follows the rating, with some noise (a one-star jump either way).
    star = np.clip(ratings[review_of_clause] - 1 + rng.choice([-1, 0, 0, 0, 0, 0, 1], c), 0, 4)
    sent = rng.integers(0, 5, c)
    verb = np.where(rng.random(c) < 0.5, "is", dom["verb"])
    clauses = [
        f"The {ATTRIBUTES[a][4][m]} {dom['aspects'][s]} {v} {SENTIMENT[st][w]}."
        for a, m, s, v, st, w in zip(
            attr.tolist(),
            mood.tolist(),
            aspect.tolist(),
            verb.tolist(),
            star.tolist(),
            sent.tolist(),
        )
    ]
    opener = rng.integers(0, 3, n)
    title_pick = rng.integers(0, 3, n)
    filler = np.where(short | (rng.random(n) < 0.5), -1, rng.integers(0, len(FILLER), n))
    start = np.concatenate([[0], np.cumsum(n_clauses)])
    # Timestamps: each user is active over a few years between 2008 and 2023.
    t0 = 1_199_145_600_000  # 2008-01-01 in ms
    span = 15 * 365 * 86_400_000
    user_start = rng.integers(t0, t0 + span * 3 // 4, len(user_ids))
    ts = user_start[users] + rng.integers(0, span // 4, n)
    ts = ts + rng.integers(0, 1000, n)  # ms noise, like the real dumps
    helpful = np.minimum(rng.exponential(0.7, n).astype(int), 50)
    verified = rng.random(n) < 0.8
    use_variant = rng.random(n) < 0.1  # some reviews name a format variant, not the parent
    order = np.lexsort((ts, users))
    records = []
    for j in order.tolist():
        r = int(ratings[j])
        parts = [OPENERS[r - 1][opener[j]], *clauses[start[j] : start[j + 1]]]
        if filler[j] >= 0:
            parts.append(FILLER[filler[j]])
        item = int(chosen[j])
        records.append(
            {
                "rating": float(r),
                "title": REVIEW_TITLES[r - 1][title_pick[j]],
                "text": " ".join(parts),
                "images": [],
                "asin": variant_asins[item] if use_variant[j] else asins[item],
                "parent_asin": asins[item],
                "user_id": user_ids[users[j]],
                "timestamp": int(ts[j]),
                "helpful_vote": int(helpful[j]),
                "verified_purchase": bool(verified[j]),
            }
        )
    return records, int(short.sum())
