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
import math
import sys
from pathlib import Path

from recbole_music.inference import ColdStartRecommender


class InputError(ValueError):
    """A bad command-line input file or value (the message names file and line)."""


def read_lines(path: Path) -> list[str]:
    """The file's lines, each decoded as UTF-8 (an error names the file and the line)."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if not path.is_file():
        raise InputError(f"{path} is a folder, not a file")
    lines = []
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise InputError(
                f"{path}:{n}: not valid UTF-8 (byte {error.start + 1}); save the file as UTF-8"
            ) from None
    return lines


def read_history(path: Path) -> tuple[list[str], list[float] | None, list[int]]:
    """(items, ratings or None, line numbers); each item once, each rating a finite number."""
    items, ratings, line_of = [], [], {}
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        item = cells[0].strip()
        if item in line_of:
            raise InputError(
                f"{path}:{n}: field 'item': {item!r} is listed twice (lines {line_of[item]} "
                f"and {n}); give each item once"
            )
        line_of[item] = n
        items.append(item)
        if len(cells) > 1:
            try:
                value = float(cells[1])
            except ValueError:
                value = None
            if value is None or not math.isfinite(value):
                raise InputError(
                    f"{path}:{n}: field 'rating': {cells[1]!r} is not a finite number"
                ) from None
            ratings.append(value)
    if ratings and len(ratings) != len(items):
        raise InputError(f"{path}: give a rating on every line or on none")
    return items, (ratings or None), [line_of[i] for i in items]


def check_rating_range(path: Path, ratings, lines, rating_range) -> None:
    """Each rating within the range the model was trained on (file, line and field named)."""
    if ratings is None or rating_range is None:
        return
    low, high = rating_range
    for value, n in zip(ratings, lines):
        if not low <= value <= high:
            raise InputError(
                f"{path}:{n}: field 'rating': {value:g} is outside the trained ratings' range "
                f"{low:g}..{high:g}"
            )


def read_reviews(path: Path) -> list[tuple[float, str]]:
    """(timestamp, text) pairs; lines without a timestamp are taken as newest first."""
    reviews = []
    lines = read_lines(path)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if "\t" in line:
            stamp, text = line.split("\t", 1)
            try:
                reviews.append((float(stamp), text))
            except ValueError:
                raise InputError(
                    f"{path}:{n}: field 'timestamp': {stamp!r} is not a number (a line is "
                    "either the review text, or a timestamp, a tab and the text)"
                ) from None
        else:
            reviews.append((float(len(lines) - n), line))  # file order = newest first
    return reviews


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


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
    parser.add_argument("--topk", type=positive_int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the diffusion's noise")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole's Config must not read our flags
    try:
        # the user's files first: a bad line is reported before the model is rebuilt
        if args.history:
            items, ratings, lines = read_history(args.history)
        reviews = read_reviews(args.reviews) if args.reviews else None
        recommender = ColdStartRecommender.from_checkpoint(args.checkpoint)
        if args.user:
            items, ratings = recommender.history_of(args.user)
        else:
            check_rating_range(args.history, ratings, lines, recommender.rating_range)
        known, unknown = recommender.split_known(items)
        if reviews is None and args.user and recommender.reads_reviews:
            reviews = recommender.reviews_of(args.user)
        how = recommender.fold_in_path(reviews)
        result = recommender.recommend_from_history(
            items, ratings, args.topk, args.seed, reviews=reviews
        )
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if unknown:
        print(
            f"note: {len(unknown)} history item(s) unknown to the model, not used: "
            + ", ".join(unknown[:10])
            + (" ..." if len(unknown) > 10 else ""),
            file=sys.stderr,
        )
    print(
        f"history: {len(known)} auxiliary items"
        + (f", {len(reviews)} reviews" if reviews is not None else "")
        + f"; u_A: {how}; top {len(result.items)} target items:"
    )
    print("rank\titem_id\tscore")
    for rank, (item, score) in enumerate(zip(result.items, result.scores), 1):
        print(f"{rank}\t{item}\t{score:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
