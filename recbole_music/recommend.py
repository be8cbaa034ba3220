"""Top-N target-domain items for a cold-start user, from a trained MuSiC checkpoint.

    python -m recbole_music.recommend --checkpoint saved/MuSiC-X.pth --history history.tsv
    python -m recbole_music.recommend --checkpoint saved/MuSiC-X.pth --user AE3F...   # a dataset user
    python -m recbole_music.recommend --checkpoint saved/MuSiC-X.pth --history history.tsv \
        --reviews reviews.tsv   # a model whose user vectors read reviews (user_vectors: reviews|both)

``history.tsv``: one auxiliary-domain item id per line, a tab and the rating on explicit data.
``reviews.tsv``: the user's auxiliary-domain reviews, one per line, newest first; or
``timestamp<TAB>text`` lines in any order. With ``--user`` the dataset's own reviews are used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def read_history(path: Path) -> tuple[list[str], list[float] | None]:
    items, ratings = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        items.append(cells[0].strip())
        if len(cells) > 1:
            try:
                ratings.append(float(cells[1]))
            except ValueError:
                raise ValueError(
                    f"{path}:{n}: field 'rating': {cells[1]!r} is not a number"
                ) from None
    if ratings and len(ratings) != len(items):
        raise ValueError(f"{path}: give a rating on every line or on none")
    return items, (ratings or None)


def read_reviews(path: Path) -> list[tuple[float, str]]:
    """(timestamp, text) pairs; lines without a timestamp are taken as newest first."""
    reviews = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if "\t" in line:
            stamp, text = line.split("\t", 1)
            try:
                reviews.append((float(stamp), text))
            except ValueError:
                raise ValueError(
                    f"{path}:{n}: field 'timestamp': {stamp!r} is not a number (a line is "
                    "either the review text, or a timestamp, a tab and the text)"
                ) from None
        else:
            reviews.append((float(len(lines) - n), line))  # file order = newest first
    return reviews


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, type=Path)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--history", type=Path, help="TSV of auxiliary-domain items [and ratings]")
    who.add_argument("--user", help="a user id of the dataset: use their auxiliary history")
    parser.add_argument(
        "--reviews",
        type=Path,
        help="the user's auxiliary-domain reviews (for user_vectors: reviews | both)",
    )
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the diffusion's noise")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole's Config must not read our flags
    from recbole_music.inference import ColdStartRecommender

    try:
        recommender = ColdStartRecommender.from_checkpoint(args.checkpoint)
        if args.user:
            items, ratings = recommender.history_of(args.user)
        else:
            items, ratings = read_history(args.history)
        reviews = None
        if args.reviews:
            reviews = read_reviews(args.reviews)
        elif args.user and recommender.reads_reviews:
            reviews = recommender.reviews_of(args.user)
        how = recommender.fold_in_path(reviews)
        result = recommender.recommend_from_history(
            items, ratings, args.topk, args.seed, reviews=reviews
        )
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"history: {len(items)} auxiliary items"
        + (f", {len(reviews)} reviews" if reviews is not None else "")
        + f"; u_A: {how}; top {len(result.items)} target items:"
    )
    print("rank\titem_id\tscore")
    for rank, (item, score) in enumerate(zip(result.items, result.scores), 1):
        print(f"{rank}\t{item}\t{score:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
