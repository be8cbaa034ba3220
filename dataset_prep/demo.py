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

from dataset_prep.layout import DEMO_DATASET

AUX_CATEGORY = "Movies_and_TV"
TARGET_CATEGORY = "CDs_and_Vinyl"

# Base counts at scale=1.0.
N_OVERLAP, N_SIDE, N_AUX_ONLY = 1500, 1200, 800
N_MOVIES, N_MUSIC = 1000, 800
IMAGE_SIZE = 32

# (name, colour, movie genres, music genres, mood words). Genres and mood words are tied to the
# attribute, so item text and review text reveal the hidden attributes.
ATTRIBUTES = [
    (
        "dark",
        (40, 30, 60),
        ("Thriller", "Horror"),
        ("Metal", "Gothic Rock"),
        ("dark", "brooding", "sinister", "haunting", "grim", "menacing"),
    ),
    (
        "upbeat",
        (250, 200, 40),
        ("Comedy", "Musicals"),
        ("Pop", "Dance"),
        ("upbeat", "cheerful", "bouncy", "sunny", "catchy", "joyful"),
    ),
    (
        "romantic",
        (220, 60, 110),
        ("Romance", "Melodrama"),
        ("R&B", "Soul"),
        ("romantic", "tender", "heartfelt", "sensual", "loving", "intimate"),
    ),
    (
        "epic",
        (200, 80, 20),
        ("Action", "Fantasy"),
        ("Symphonic", "Soundtracks"),
        ("epic", "grand", "sweeping", "heroic", "majestic", "thunderous"),
    ),
    (
        "retro",
        (150, 110, 70),
        ("Westerns", "Classic Cinema"),
        ("Oldies", "Classic Rock"),
        ("retro", "vintage", "nostalgic", "old-school", "timeless", "classic"),
    ),
    (
        "experimental",
        (60, 200, 190),
        ("Art House", "Independent"),
        ("Avant-Garde", "Electronic"),
        ("experimental", "strange", "abstract", "daring", "surreal", "unconventional"),
    ),
    (
        "calm",
        (110, 170, 230),
        ("Nature", "Documentary"),
        ("Ambient", "New Age"),
        ("calm", "gentle", "soothing", "quiet", "peaceful", "mellow"),
    ),
    (
        "playful",
        (120, 210, 80),
        ("Animation", "Kids & Family"),
        ("Children's Music", "Novelty"),
        ("playful", "quirky", "silly", "whimsical", "funny", "zany"),
    ),
]
K = len(ATTRIBUTES)

# Rating model (tuned so ratings skew to 4-5 stars, like Amazon's).
MU, ALPHA, ALPHA_DISLIKE, GAMMA = 4.2, 0.7, 1.5, 1.0
SD_ITEM, SD_USER, SD_NOISE = 0.35, 0.5, 0.7
LETDOWN_SHARE, LETDOWN_DROP = 0.05, 3.0
SD_TASTE_NOISE = 0.45  # music taste = M @ movie taste + this noise
# What the paper's filters find to drop. At scale 1.0 about 1,200 of the 1,500 overlapping users
# keep >= 20 reviews in both domains after the review and item filters.
SHORT_REVIEW_SHARE = 0.05
LOW_ACTIVITY_SHARE = 0.07  # users of a domain with fewer than 20 reviews there
ACTIVITY_FLOOR, ACTIVITY_TAIL = 23, 4.0  # the others: floor + exponential tail, capped at 40
NO_DESCRIPTION_SHARE = 0.02
NO_IMAGE_SHARE = 0.02
# Users are ranked against every item of a domain in blocks of this many rows, so a large
# ``scale`` needs memory for a block, not for all users x items.
USER_BLOCK = 2048
# How a user's items are drawn: exact (a pass over every item) | grouped (by attribute pattern)
SAMPLERS = ("exact", "grouped")
# Without local images (``images=False``) the meta files link images by URL, as Amazon's do.
IMAGE_URL = "https://m.media-amazon.com/images/I/{asin}.jpg"

_ALNUM = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
_USER_CHARS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))

# Per domain: root category, main_category, kind word, aspect nouns, format, title nouns, stores.
_DOMAINS = {
    AUX_CATEGORY: {
        "root": "Movies & TV",
        "main": "Movies & TV",
        "kind": "film",
        "format": "DVD",
        "aspects": ("plot", "acting", "score", "ending", "cinematography", "pacing", "dialogue"),
        "verb": "looks",
        "nouns": (
            "Harbor",
            "Night",
            "Journey",
            "Empire",
            "Garden",
            "Stranger",
            "River",
            "Summer",
            "Frontier",
            "Signal",
            "Island",
            "Promise",
            "Mirror",
            "Storm",
            "Letter",
            "Road",
        ),
        "stores": (
            "Northlight Pictures",
            "Bluefield Studios",
            "Cedar Films",
            "Granite Media",
            "Lantern Entertainment",
            "Paloma Home Video",
        ),
    },
    TARGET_CATEGORY: {
        "root": "CDs & Vinyl",
        "main": "Digital Music",
        "kind": "album",
        "format": "Audio CD",
        "aspects": (
            "singing",
            "production",
            "songwriting",
            "melody",
            "groove",
            "mix",
            "arrangement",
        ),
        "verb": "sounds",
        "nouns": (
            "Echoes",
            "Skylines",
            "Hearts",
            "Machines",
            "Waves",
            "Lights",
            "Stories",
            "Horizons",
            "Rooms",
            "Seasons",
            "Wires",
            "Colours",
            "Tides",
            "Roads",
            "Dreams",
        ),
        "stores": (
            "The Velvet Owls",
            "Mara Quinn",
            "Static Parade",
            "Jonah Reyes Trio",
            "Glass Harbor",
            "Nadia Sol",
            "The Low Orchard",
            "Kestrel",
        ),
    },
}

# Review wording by star rating (index 0 = 1 star).
_OPENERS = (
    ("Total waste of money.", "Could not finish it.", "Really disliked this."),
    ("Not for me.", "Rather disappointing overall.", "Expected much more."),
    ("It was okay.", "Mixed feelings here.", "Decent but forgettable."),
    ("Pretty good one.", "Enjoyed this a lot.", "Worth the price."),
    ("Absolutely loved it!", "An instant favourite.", "Simply wonderful."),
)
_SENTIMENT = (
    ("awful", "terrible", "unbearable", "boring", "dreadful"),
    ("weak", "dull", "disappointing", "flat", "tiresome"),
    ("okay", "uneven", "average", "passable", "fine"),
    ("good", "enjoyable", "solid", "pleasant", "nice"),
    ("superb", "wonderful", "brilliant", "fantastic", "stunning"),
)
_REVIEW_TITLES = (
    ("One Star", "Awful", "Avoid"),
    ("Two Stars", "Disappointing", "Meh"),
    ("Three Stars", "It's okay", "Average"),
    ("Four Stars", "Good", "Worth it"),
    ("Five Stars", "Excellent", "Love it"),
)
_FILLER = (
    "Arrived quickly and well packaged.",
    "Would recommend it to friends.",
    "Bought it as a gift.",
    "My family had opinions about it.",
    "Glad I finally got a copy.",
    "The case was a bit scratched.",
    "Took a while to get into it.",
    "Came back to it twice.",
)
_DESC_TAILS = (
    "that rewards a second visit",
    "from a team at the top of its craft",
    "remastered for this edition",
    "with a booklet of liner notes",
    "that found its audience slowly",
    "made on a modest budget",
)


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


def _all_but_a_share(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """A mask that is False for a fixed count (at least one) of random positions."""
    mask = np.ones(n, dtype=bool)
    mask[rng.choice(n, size=max(1, round(share * n)), replace=False)] = False
    return mask


def _mixing_matrix(rng: np.random.Generator) -> np.ndarray:
    """Movie taste -> music taste: mostly the same attribute, partly a neighbouring one."""
    m = 0.8 * np.eye(K) + 0.35 * np.eye(K)[rng.permutation(K)]
    m += rng.normal(0.0, 0.08, size=(K, K))
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _activity(rng: np.random.Generator, n: int, activity: float) -> np.ndarray:
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


def _max_activity(activity: float) -> int:
    """The most reviews :func:`_activity` gives one user."""
    return int(np.rint(40 * activity))


def _items(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
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


def _draw_reviews(
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
        users, chosen, fit = _choose_exact(rng, taste, items, activity)
    elif sampler == "grouped":
        users, chosen, fit = _choose_grouped(rng, taste, items, activity)
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


def _choose_exact(rng, taste, items, activity):
    """(user, item, affinity) rows: each user's items by Gumbel top-k over every item."""
    n_users, n_items = len(taste), len(items["bias"])
    top = min(n_items, _max_activity(activity))
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
    counts = np.minimum(_activity(rng, n_users, activity), n_items)
    take = np.arange(top)[None, :] < counts[:, None]
    return np.repeat(np.arange(n_users), counts), order[take], top_affinity[take]


def _choose_grouped(rng, taste, items, activity):
    """(user, item, affinity) rows drawn from the same distribution as :func:`_choose_exact`
    without touching every item per user: an item's weight ``exp(GAMMA * <theta, a_i>) *
    pop_i`` depends on the user only through its attribute pattern (at most K * K of them),
    so a draw picks a pattern (weight: ``exp(GAMMA * affinity)`` times the pattern's total
    popularity), then an item of it by popularity. Draws are with replacement, repeats dropped
    (a user's 20-80 items out of thousands per pattern rarely repeat; a user left short by
    repeats keeps fewer items)."""
    n_users, n_items = len(taste), len(items["bias"])
    counts = np.minimum(_activity(rng, n_users, activity), n_items)
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


def _item_images(
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


def _meta_records(
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
    dom = _DOMAINS[category]
    is_movie = category == AUX_CATEGORY
    n = len(asins)
    genre_col = 2 if is_movie else 3
    counts = np.bincount(chosen, minlength=n)
    sums = np.bincount(chosen, weights=ratings, minlength=n)
    has_desc = _all_but_a_share(rng, n, NO_DESCRIPTION_SHARE)
    pick = rng.integers(0, 6, size=(n, 3))
    genre_pick = rng.integers(0, 2, size=(n, 2))
    noun = rng.integers(0, len(dom["nouns"]), n)
    store = rng.integers(0, len(dom["stores"]), n)
    tail = rng.integers(0, len(_DESC_TAILS), n)
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
                f"{article} {mood} {genre} {dom['kind']} {_DESC_TAILS[tail[i]]}. "
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


def _review_records(
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
    dom = _DOMAINS[category]
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
        f"The {ATTRIBUTES[a][4][m]} {dom['aspects'][s]} {v} {_SENTIMENT[st][w]}."
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
    filler = np.where(short | (rng.random(n) < 0.5), -1, rng.integers(0, len(_FILLER), n))
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
        parts = [_OPENERS[r - 1][opener[j]], *clauses[start[j] : start[j + 1]]]
        if filler[j] >= 0:
            parts.append(_FILLER[filler[j]])
        item = int(chosen[j])
        records.append(
            {
                "rating": float(r),
                "title": _REVIEW_TITLES[r - 1][title_pick[j]],
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
    :func:`_choose_grouped`; needed for catalogues of 100k+ items, different files).
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
    fewest_items = max(80, 2 * _max_activity(activity))
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
    music_taste = theta @ _mixing_matrix(rng).T + rng.normal(0.0, SD_TASTE_NOISE, (n_users, K))
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
        item_model = _items(rng, n)
        asins = _ids(rng, n, "B0", _ALNUM, 8, taken)
        variants = _ids(rng, n, "B0", _ALNUM, 8, taken)
        local_users, chosen, ratings = _draw_reviews(
            rng, taste[domain_users], bias[domain_users], item_model, activity, sampler
        )
        has_image = _all_but_a_share(rng, n, NO_IMAGE_SHARE)
        meta, no_desc = _meta_records(
            rng, category, item_model, asins, ratings, chosen, has_image, images
        )
        reviews, n_short = _review_records(
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
            pixels = _item_images(rng, item_model, category == AUX_CATEGORY)
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
