"""Names inside a dataset folder, shared by the writer (``dataset_prep``) and the reader
(``recbole_music``): change one here and both sides follow.

A dataset ``<data_path>/<name>/`` holds the RecBole atomic files ``<name>.inter``/``.item``/
``.user``, ``<name>.yaml``, the build record :data:`BUILD_RECORD` (written last) and, optionally,
the vector tables (:mod:`dataset_prep.vector_table`) in :data:`FEATURES_FOLDER`.
"""

from __future__ import annotations

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
