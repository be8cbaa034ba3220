"""Names inside a dataset folder, shared by the writer (``dataset_prep``) and the reader
(``recbole_music``): change one here and both sides follow.

A dataset ``<data_path>/<name>/`` holds the RecBole atomic files ``<name>.inter``/``.item``/
``.user``, ``<name>.yaml``, the build record :data:`BUILD_RECORD` (written last) and, optionally,
the vector tables (:mod:`dataset_prep.vector_table`) in :data:`FEATURES_FOLDER`, and the review
file ``<name>.review`` (header-only when the source had no review text).
"""

from __future__ import annotations

from pathlib import Path

DEMO_DATASET = "movie_music_demo"  # the generated demo (dataset_prep.demo), not Amazon data

# the ``domain`` token of every interaction: the auxiliary (source) and the target domain
AUX, TARGET = "aux", "target"
DOMAINS = (AUX, TARGET)

BUILD_RECORD = "build.json"
FEATURES_FOLDER = "features"

# vector tables in FEATURES_FOLDER: item vectors, and user vectors from each domain's reviews
ITEMS_TABLE = "items"
USERS_AUX_TABLE, USERS_TARGET_TABLE = "users_aux", "users_target"
USER_TABLES = (USERS_AUX_TABLE, USERS_TARGET_TABLE)
FEATURE_TABLES = (ITEMS_TABLE, *USER_TABLES)

REVIEW_SUFFIX = "review"  # <name>.review: user_id, item_id, domain, text (docs/dataset_format.md)


def review_file(folder: Path, name: str) -> Path:
    """The review file of dataset ``name`` in ``folder``."""
    return Path(folder) / f"{name}.{REVIEW_SUFFIX}"


def has_review_text(path: Path) -> bool:
    """Whether the review file ``path`` exists and holds at least one non-empty text field (a
    dataset built without reviews has a header-only file)."""
    if not Path(path).is_file():
        return False
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        column = next((k for k, name in enumerate(header) if name.split(":")[0] == "text"), None)
        if column is None:
            return False
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if len(fields) > column and fields[column].strip():
                return True
    return False
