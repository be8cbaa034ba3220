"""The paper's cross-domain tasks, and how to find a category's raw files in a folder.

Amazon review dumps come under official names that differ per release:

* 2023: ``<Cat>.jsonl[.gz]`` and ``meta_<Cat>.jsonl[.gz]``
* 2018: ``<Cat>.json[.gz]`` or the 5-core ``<Cat>_5.json[.gz]``, and ``meta_<Cat>.json[.gz]``
* 2014: ``reviews_<Cat>.json[.gz]`` or ``reviews_<Cat>_5.json[.gz]``, and ``meta_<Cat>.json[.gz]``

:func:`find_category_files` looks for them in that order and says which names it tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dataset_prep.errors import DataError
from dataset_prep.layout import DEMO_DATASET


@dataclass(frozen=True)
class Task:
    """A cold-start cross-domain task: users known in ``aux`` get recommendations in ``target``."""

    name: str
    aux: str  # Amazon category of the auxiliary (source) domain
    target: str  # Amazon category of the target domain
    generated: bool = False  # synthetic demo data
    default_raw_dir: str | None = None  # relative to the output root's parent ("dataset/raw/...")
    description: str = ""


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("movie_music", "Movies_and_TV", "CDs_and_Vinyl", description="Movie -> Music"),
        Task("book_movie", "Books", "Movies_and_TV", description="Book -> Movie"),
        Task("book_music", "Books", "CDs_and_Vinyl", description="Book -> Music"),
        Task(
            DEMO_DATASET,
            "Movies_and_TV",
            "CDs_and_Vinyl",
            generated=True,
            default_raw_dir=f"raw/{DEMO_DATASET}",
            description="Movie -> Music on small GENERATED data (python -m dataset_prep demo)",
        ),
    )
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


def default_raw_dir(task: Task, out_root: str | Path = "dataset") -> Path:
    """Where a task's raw files live by default: ``<out_root>/raw`` (the download target), or the
    task's own folder for the generated demo."""
    return Path(out_root) / (task.default_raw_dir or "raw")


@dataclass(frozen=True)
class CategoryFiles:
    category: str
    reviews: Path
    meta: Path
    layout: str  # "amazon2023" | "amazon2018" | "amazon2014"


def _name_candidates(category: str) -> list[tuple[str, list[str], list[str]]]:
    gz = ("", ".gz")
    return [
        (
            "amazon2023",
            [f"{category}.jsonl{z}" for z in gz],
            [f"meta_{category}.jsonl{z}" for z in gz],
        ),
        (
            "amazon2018",
            [f"{category}{core}.json{z}" for core in ("", "_5") for z in gz],
            [f"meta_{category}.json{z}" for z in gz],
        ),
        (
            "amazon2014",
            [f"reviews_{category}{core}.json{z}" for core in ("", "_5") for z in gz],
            [f"meta_{category}.json{z}" for z in gz],
        ),
    ]


def find_category_files(category: str, raw_dir: str | Path) -> CategoryFiles:
    """The reviews and meta files of ``category`` in ``raw_dir``, under any official name.

    Raises :class:`DataError` naming the folder and every name looked for when no release has
    both files there.
    """
    raw_dir = Path(raw_dir)
    tried: list[str] = []
    half_found: list[str] = []
    for layout, review_names, meta_names in _name_candidates(category):
        reviews = next((raw_dir / n for n in review_names if (raw_dir / n).is_file()), None)
        meta = next((raw_dir / n for n in meta_names if (raw_dir / n).is_file()), None)
        if reviews is not None and meta is not None:
            return CategoryFiles(category, reviews, meta, layout)
        if reviews is not None:
            half_found.append(f"{reviews.name} without its meta file ({' or '.join(meta_names)})")
        tried.append(f"{layout}: {' / '.join(review_names)} + {' / '.join(meta_names)}")
    message = f"no raw files for category {category!r}; looked for " + "; ".join(tried)
    if half_found:
        message += "; found " + ", ".join(half_found)
    if not raw_dir.is_dir():
        message += " (the folder does not exist; `python -m dataset_prep download` fetches files)"
    raise DataError(raw_dir, None, None, message)
