"""``python -m dataset_prep``: build, demo and download subcommands."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dataset_prep.builder import DomainSource, build_dataset
from dataset_prep.demo_build import build_demo, build_task
from dataset_prep.download import DownloadError, download_categories
from dataset_prep.enrich import add_enrich_parser
from dataset_prep.errors import DataError
from dataset_prep.features.command import add_features_parser
from dataset_prep.filters import NO_FILTERS, FilterSettings, default_filters
from dataset_prep.presets import TASKS, default_raw_dir, find_category_files, get_task
from dataset_prep.progress import NO_PROGRESS_HELP
from dataset_prep.readers import detect_layout

logger = logging.getLogger("dataset_prep")

EXIT_USAGE = 2

_EPILOG_BUILD = """\
examples:
  # a preset task from the official Amazon files in dataset/raw (see `download`)
  python -m dataset_prep build --task movie_music
  # two categories found by their official names in a folder
  python -m dataset_prep build --aux Books --target CDs_and_Vinyl --raw-dir ~/amazon --name books_cds
  # a tabular source holding both domains (no filters by default for CSV/TSV)
  python -m dataset_prep build \\
      --aux interactions.tsv --aux-meta items.tsv --aux-where domain=food \\
      --target interactions.tsv --target-meta items.tsv --target-where domain=kitchen \\
      --name food_kitchen
  # ratings only (user, item, rating[, timestamp], domain): no item file, items carry no text
  python -m dataset_prep build \\
      --aux ratings.tsv --aux-where domain=books --target ratings.tsv --target-where domain=movies

filters: Amazon sources default to the paper's (reviews >= 10 words, items with a description
and an image, users >= 20 reviews per domain); CSV/TSV sources default to none. --no-filters
turns all off; the single options override either default.
"""


class UsageError(Exception):
    """A bad combination of options (reported as ``error: ...``, exit code 2)."""


def _key_values(text: str, option: str) -> dict[str, str]:
    pairs = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option}: expected key=value[,key=value...], got {text!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _merge_where(values: list[str] | None, option: str) -> dict[str, str] | None:
    if not values:
        return None
    where: dict[str, str] = {}
    for v in values:
        where.update(_key_values(v, option))
    return where


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_prep",
        description="Turn raw review dumps into a cold-start cross-domain dataset folder "
        "(RecBole atomic files; see docs/dataset_format.md).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (debug level)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks_help = ", ".join(f"{t.name} ({t.aux} -> {t.target})" for t in TASKS.values())

    b = sub.add_parser(
        "build",
        help="build a dataset from raw files",
        description="Build <out>/<name>/ from an auxiliary (source) and a target domain.",
        epilog=_EPILOG_BUILD,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = b.add_argument_group("what to build")
    src.add_argument("--task", choices=sorted(TASKS), help=f"a preset task: {tasks_help}")
    src.add_argument(
        "--raw-dir",
        type=Path,
        help="folder with the official Amazon files (default: <out>/raw, or the demo's raw folder)",
    )
    src.add_argument(
        "--aux",
        metavar="CATEGORY|FILE",
        help="auxiliary domain: an Amazon category or an interactions file (reviews or ratings)",
    )
    src.add_argument(
        "--target",
        metavar="CATEGORY|FILE",
        help="target domain: an Amazon category or an interactions file (reviews or ratings)",
    )
    src.add_argument(
        "--aux-meta",
        type=Path,
        metavar="FILE",
        help="item file of the auxiliary domain (optional: without it items carry no text)",
    )
    src.add_argument(
        "--target-meta",
        type=Path,
        metavar="FILE",
        help="item file of the target domain (optional: without it items carry no text)",
    )
    src.add_argument(
        "--layout",
        choices=["amazon2023", "amazon2018", "amazon2014", "csv"],
        help="layout of the given files (default: detected)",
    )
    src.add_argument(
        "--aux-where",
        action="append",
        metavar="COL=VALUE",
        help="tabular: keep auxiliary rows where COL == VALUE",
    )
    src.add_argument(
        "--target-where",
        action="append",
        metavar="COL=VALUE",
        help="tabular: keep target rows where COL == VALUE",
    )
    src.add_argument(
        "--columns",
        metavar="ROLE=COL,...",
        help="tabular: which column plays which role (user, item, rating, timestamp, text, summary, "
        "title, image, categories); unnamed roles are guessed from the header",
    )
    src.add_argument("--name", help="dataset name (default: the task, or <aux>_<target>)")
    _add_out(b)

    flt = b.add_argument_group("filters")
    flt.add_argument(
        "--no-filters",
        action="store_true",
        help="turn every filter off (then apply the options below)",
    )
    flt.add_argument(
        "--min-review-words", type=int, metavar="N", help="drop reviews with fewer words"
    )
    flt.add_argument(
        "--min-user-reviews",
        type=int,
        metavar="N",
        help="drop users with fewer interactions (reviews) in a domain",
    )
    flt.add_argument(
        "--require-description",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop items without a description",
    )
    flt.add_argument(
        "--require-image",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop items without an image",
    )
    _add_build_options(b)
    b.set_defaults(func=cmd_build)

    d = sub.add_parser(
        "demo",
        help="generate and build the small GENERATED demo dataset",
        description="Generate synthetic Amazon-2023-layout files into <out>/raw/movie_music_demo "
        "(skipped when already there for this seed and scale) and build <out>/movie_music_demo "
        "from them exactly like real data. The data is GENERATED: its numbers say nothing about "
        "real recommendation quality.",
    )
    d.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    d.add_argument("--scale", type=float, default=1.0, help="size multiplier (default: 1.0)")
    _add_out(d)
    d.add_argument(
        "--keep-work", action="store_true", help="keep the work folder <out>/.work/<name>"
    )
    d.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    d.add_argument(
        "--no-features",
        action="store_true",
        help="skip embedding items and users with the default encoder",
    )
    d.set_defaults(func=cmd_demo)

    dl = sub.add_parser(
        "download",
        help="download Amazon Reviews 2023 category files",
        description="Download the reviews and meta files of Amazon Reviews 2023 categories (resumable).",
    )
    what = dl.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=sorted(t for t, v in TASKS.items() if not v.generated))
    what.add_argument(
        "--category", nargs="+", metavar="CAT", help="e.g. Movies_and_TV CDs_and_Vinyl"
    )
    dl.add_argument("--raw-dir", type=Path, help="where to put the files (default: <out>/raw)")
    _add_out(dl)
    dl.add_argument("--base-url", help="mirror of the Amazon Reviews 2023 files")
    dl.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    dl.set_defaults(func=cmd_download)

    add_features_parser(sub)

    add_enrich_parser(sub)
    return parser


def _add_out(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=Path, default=Path("dataset"), help="output root (default: dataset)"
    )


def _add_build_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument(
        "--max-bad-lines",
        type=int,
        default=100,
        metavar="N",
        help="skip up to N malformed lines per file, then stop (default: 100; 0 = none)",
    )
    g.add_argument(
        "--keep-work",
        action="store_true",
        help="keep the work folder <out>/.work/<name> (the filtered spools) after a successful build",
    )
    g.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)


# --- commands --------------------------------------------------------------------------------


def _filters(args: argparse.Namespace, layout: str | None) -> FilterSettings:
    base = NO_FILTERS if args.no_filters else default_filters(layout)
    return base.with_overrides(
        min_review_words=args.min_review_words,
        min_user_reviews=args.min_user_reviews,
        require_description=args.require_description,
        require_image=args.require_image,
    )


def _is_file_arg(value: str) -> bool:
    p = Path(value)
    return p.exists() or "/" in value or "\\" in value or "." in p.name


def _domain(args: argparse.Namespace, role: str, columns: dict | None):
    value = getattr(args, role)
    meta = getattr(args, f"{role}_meta")
    where = _merge_where(getattr(args, f"{role}_where"), f"--{role}-where")
    if _is_file_arg(value):
        reviews = Path(value)
        for p in (reviews, meta):
            if p is not None and not p.is_file():
                raise UsageError(f"{p}: file not found")
        if meta is None:
            logger.info(
                "--%s %s has no item file (--%s-meta): its items are known by id only and carry "
                "no text, so feature extraction has nothing to embed for them",
                role,
                value,
                role,
            )
        layout = args.layout
        if layout is None:
            layout = detect_layout(reviews)
        return DomainSource(reviews, meta, layout, columns=columns, where=where), layout
    if meta is not None:
        raise UsageError(
            f"--{role}-meta is for files; --{role} {value} is a category (found under --raw-dir)"
        )
    raw = args.raw_dir if args.raw_dir is not None else args.out / "raw"
    found = find_category_files(value, raw)
    return DomainSource(
        found.reviews, found.meta, found.layout, columns, where, label=value
    ), found.layout


def cmd_build(args: argparse.Namespace) -> int:
    columns = _key_values(args.columns, "--columns") if args.columns else None
    started = time.monotonic()
    if args.task:
        if args.aux or args.target:
            raise UsageError("give either --task or --aux/--target, not both")
        task = get_task(args.task)
        raw = args.raw_dir if args.raw_dir is not None else default_raw_dir(task, args.out)
        layout = find_category_files(task.aux, raw).layout
        if task.generated:
            _shout_generated()
        result = build_task(
            task.name,
            raw_dir=raw,
            out_root=args.out,
            name=args.name,
            filters=_filters(args, layout),
            max_bad_lines=args.max_bad_lines,
            keep_work=args.keep_work,
            show_progress=not args.no_progress,
        )
    else:
        if not (args.aux and args.target):
            raise UsageError("give --task NAME, or both --aux and --target")
        aux, aux_layout = _domain(args, "aux", columns)
        target, _ = _domain(args, "target", columns)
        name = args.name or f"{aux.label}_{target.label}".lower()
        result = build_dataset(
            name,
            aux,
            target,
            out_root=args.out,
            filters=_filters(args, aux_layout),
            max_bad_lines=args.max_bad_lines,
            keep_work=args.keep_work,
            show_progress=not args.no_progress,
        )
    _report(result, time.monotonic() - started)
    return 0


def _shout_generated() -> None:
    bar = "!" * 78
    print(
        f"{bar}\n!! GENERATED DATA: movie_music_demo is synthetic (dataset_prep.demo), not Amazon data.\n"
        f"!! Use it to try the pipeline; its metrics say nothing about real recommendation quality.\n{bar}",
        file=sys.stderr,
    )


def _report(result, seconds: float) -> None:
    print()
    print(result.table())
    print()
    print(f"wrote {result.path} in {seconds:.1f}s")
    if result.reused_domains:
        print(f"(reused the cached spool of: {', '.join(result.reused_domains)})")
    if result.stats["generated"]:
        _shout_generated()


def cmd_demo(args: argparse.Namespace) -> int:
    if args.scale <= 0:
        raise UsageError(f"--scale must be > 0, got {args.scale}")
    _shout_generated()
    started = time.monotonic()
    result = build_demo(
        args.out,
        seed=args.seed,
        scale=args.scale,
        keep_work=args.keep_work,
        show_progress=not args.no_progress,
        features=not args.no_features,
    )
    _report(result, time.monotonic() - started)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    categories = (
        list(dict.fromkeys([get_task(args.task).aux, get_task(args.task).target]))
        if args.task
        else args.category
    )
    raw = args.raw_dir if args.raw_dir is not None else args.out / "raw"
    kwargs = {"show_progress": not args.no_progress}
    if args.base_url:
        kwargs["base_url"] = args.base_url
    paths = download_categories(categories, raw, **kwargs)
    for p in paths:
        print(p)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    expected: tuple[type[BaseException], ...] = (
        UsageError,
        DataError,
        FileNotFoundError,
        ValueError,
        DownloadError,
    )
    try:
        return args.func(args)
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; no half-written dataset was left behind", file=sys.stderr)
        return 130
