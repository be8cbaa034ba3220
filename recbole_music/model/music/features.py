"""Where MuSiC's item and user features come from: the ``feature_source`` setting.

* ``multimodal`` — the paper: frozen vectors from ``dataset_prep features`` (items: MLLM over
  image + text; users: LLM over their reviews, one vector per domain), each through a tanh MLP;
* ``collaborative`` — learned ID embeddings trained by the rating losses (the paper's
  "w/o MLLM" ablation): items one embedding, users one per domain;
* ``fused`` — both, summed, so the diffusion can work on what the interactions know where
  content alone transfers poorly (short titles, sparse text);
* ``interactions`` — frozen item vectors from the training interactions alone (a truncated SVD
  of ``interaction_vector_dim`` dimensions, see interaction_vectors), through the same MLPs as
  ``multimodal``: data with no content;
* ``hybrid`` — the content vectors with the interaction vectors appended (and so the history
  vectors built from them);
* with ``interactions`` or ``hybrid``, ``cold_item_vectors: content`` gives an item without
  training interactions the interaction vector its content predicts (content_mapping) instead
  of zeros (which leave it to the evaluator's fallback);
* ``auto`` (default) — on implicit feedback ``interactions`` (in the dual cold-start too); on
  explicit feedback ``multimodal`` when the dataset
  has the feature tables, else ``interactions`` (or ``collaborative`` when
  ``interaction_vector_dim`` is 0), with a warning that says so.

A user's *target* vector is read only for users whose target interactions are in training
(side users, training overlap users): held-out users' target reviews are test information.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from recbole_music.config import setting
from recbole_music.model.music.content_mapping import (
    items_with_training_interactions,
    map_content_to_interactions,
)
from recbole_music.model.music.interaction_vectors import interaction_vector_tables
from recbole_music.model.music.projection import ProjectionMLP
from recbole_music.model.music.user_history_vectors import (
    ROW_CHUNK,
    checked_history_dropout,
    dropped_history_vectors,
    history_rows,
    history_vector,
    user_history_vectors,
)

FEATURE_SOURCES = ("multimodal", "collaborative", "fused", "interactions", "hybrid")
CONTENT_SOURCES = ("multimodal", "fused", "hybrid")  # read the feature tables
INTERACTION_SOURCES = ("interactions", "hybrid")  # read the interaction vectors
FROZEN_VECTOR_SOURCES = ("multimodal", "fused", "interactions", "hybrid")
# a user's feature is their frozen vector through the user MLP alone (fused adds an embedding)
USER_VECTOR_SOURCES = ("multimodal", "interactions", "hybrid")
USER_VECTOR_RULES = ("reviews", "history", "both")
USER_TABLES = ("users_aux", "users_target")
COLD_ITEM_RULES = ("zero", "content")
LOSS_TERM_SHARING = ("step", "first_layer")  # the loss_terms_share setting


VECTOR_DTYPES = ("float32", "float16")
PROJECTION_CHUNK = 16_384  # rows projected at once without gradients (scoring every item)


def vector_dtype(name: str) -> torch.dtype:
    """The frozen vectors' precision in memory (``vector_dtype``)."""
    if name not in VECTOR_DTYPES:
        raise ValueError(f"vector_dtype must be one of {VECTOR_DTYPES}, got {name!r}")
    return getattr(torch, name)


def _has_table(dataset, table: str) -> bool:
    return (dataset.feature_path() / f"{table}.json").is_file()


def resolve_user_vectors(requested: str | None, dataset) -> str:
    """``auto`` -> ``both`` when the review tables exist, else ``history`` (said in the log)."""
    requested = (requested or "auto").lower()
    if requested == "auto":
        if all(_has_table(dataset, t) for t in USER_TABLES):
            return "both"
        logging.getLogger().warning(
            "MuSiC: no user review vectors in %s -> user_vectors=history (where user vectors "
            "are used, each is built from the vectors of the items the user interacted with)",
            dataset.feature_path(),
        )
        return "history"
    if requested not in USER_VECTOR_RULES:
        raise ValueError(
            f"user_vectors must be auto or one of {USER_VECTOR_RULES}, got {requested}"
        )
    return requested


def resolve_feature_source(
    requested: str | None, user_rule: str, dataset, interaction_dim: int = 0
) -> str:
    """The feature source to use. ``auto``: on implicit feedback, interactions (with
    ``interaction_dim`` > 0: which items are chosen together decides a ranking); on explicit
    feedback, multimodal when its tables exist (the items table, plus the user tables when
    ``user_rule`` reads reviews); else interactions or, without them, collaborative."""
    requested = (requested or "auto").lower()
    needed = ["items"] + (list(USER_TABLES) if user_rule in ("reviews", "both") else [])
    missing = [t for t in needed if not _has_table(dataset, t)]
    folder = dataset.feature_path()
    implicit_interactions = not dataset.is_explicit and interaction_dim > 0
    if requested == "auto" and getattr(dataset, "has_cold_items", False):
        # dual cold-start: interaction vectors know nothing of an item unseen in training, but on
        # implicit data they still decide the ranking of the others (measured on Food-Kitchen:
        # bench/results/music_dual_food_kitchen.md); an unseen item gets the evaluator's
        # fallback, or its content's vector with cold_item_vectors: content
        if implicit_interactions:
            logging.getLogger().info(
                "MuSiC: dual cold-start, implicit feedback -> feature_source=interactions (an "
                "item unseen in training: see cold_item_vectors)"
            )
            return "interactions"
        if not missing:
            logging.getLogger().info(
                "MuSiC: dual cold-start -> feature_source=multimodal (items unseen in training "
                "are scored from their content vectors)"
            )
            return "multimodal"
        logging.getLogger().warning(
            "MuSiC: dual cold-start without the feature tables %s in %s: items unseen in "
            "training have no vector of their own (run `python -m dataset_prep features`)",
            missing,
            folder,
        )
    if requested == "auto":
        if implicit_interactions:
            logging.getLogger().info(
                "MuSiC: implicit feedback -> feature_source=interactions (item vectors from the "
                "training interactions%s)",
                "" if missing else "; the content tables are read with multimodal or hybrid",
            )
            return "interactions"
        if not missing:
            return "multimodal"
        fallback = "interactions" if interaction_dim > 0 else "collaborative"
        meaning = {
            "interactions": "frozen item vectors from the training interactions",
            "collaborative": "learned ID embeddings, the paper's 'w/o MLLM'",
        }[fallback]
        logging.getLogger().warning(
            "MuSiC: feature tables %s missing in %s -> feature_source=%s (%s). Run `python -m "
            "dataset_prep features --dataset %s` for multimodal features (items need text or images for them).",
            missing,
            folder,
            fallback,
            meaning,
            dataset.dataset_name,
        )
        return fallback
    if requested not in FEATURE_SOURCES:
        raise ValueError(
            f"feature_source must be auto or one of {FEATURE_SOURCES}, got {requested}"
        )
    if requested in INTERACTION_SOURCES and interaction_dim <= 0:
        raise ValueError(f"feature_source={requested} needs interaction_vector_dim > 0")
    if requested in CONTENT_SOURCES and missing:
        raise FileNotFoundError(
            f"feature_source={requested} with user_vectors={user_rule} needs the feature "
            f"tables {missing} in {folder}; run `python -m dataset_prep features --dataset "
            f"{dataset.dataset_name}` or use feature_source=collaborative"
        )
    return requested


def user_vectors(
    rule: str, dataset, item_vectors, dtype: torch.dtype, history_scale: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(auxiliary, target) frozen user vectors by the ``user_vectors`` rule: ``reviews`` (the
    LLM tables, the paper), ``history`` (from the user's items, see user_history_vectors) or
    ``both`` (the two side by side), in ``dtype``; history vectors scaled by ``history_scale``
    (history_vector_scale)."""
    parts = {True: [], False: []}
    for target, table in ((False, "users_aux"), (True, "users_target")):
        if rule in ("reviews", "both"):
            parts[target].append(dataset.load_features(table, "user_id", dtype)[0])
        if rule in ("history", "both"):
            history = user_history_vectors(dataset, item_vectors, target, history_scale)
            parts[target].append(history.to(dtype))
    return tuple(p[0] if len(p) == 1 else torch.cat(p, dim=1) for p in (parts[False], parts[True]))


def _mapped_from_content(dataset, vectors: torch.Tensor) -> torch.Tensor:
    """``vectors`` with the items that have no training interaction mapped from their content
    (cold_item_vectors: content; see content_mapping)."""
    if not _has_table(dataset, "items"):
        raise FileNotFoundError(
            f"cold_item_vectors=content needs the items table in {dataset.feature_path()}; run "
            f"`python -m dataset_prep features --dataset {dataset.dataset_name} --items` or set "
            "cold_item_vectors: zero"
        )
    content, has_content = dataset.load_features("items", "item_id")
    seen = items_with_training_interactions(dataset)
    mapped, report = map_content_to_interactions(
        vectors, content, seen, np.asarray(has_content, dtype=bool)
    )
    logging.getLogger().info(
        "MuSiC: cold_item_vectors=content: %d items without training interactions mapped from "
        "their content (ridge fit on %d items, strength %s, held-out R2 %s)",
        report["mapped"],
        report["fit_on"],
        report["strength"],
        None if report["held_out_r2"] is None else round(report["held_out_r2"], 3),
    )
    return mapped


FROZEN_TABLES = ("item_vectors", "user_aux_vectors", "user_target_vectors")


def fingerprint(*tables: torch.Tensor) -> torch.Tensor:
    """Per table: rows, columns, sum and sum of squares (float64, in row chunks so a 4,096-dim
    table is never copied whole) -- what a checkpoint keeps of its frozen vectors."""
    rows = []
    for table in tables:
        total = torch.zeros(2, dtype=torch.float64)
        for lo in range(0, table.shape[0], ROW_CHUNK):
            chunk = table[lo : lo + ROW_CHUNK].double()
            total += torch.stack([chunk.sum(), chunk.pow(2).sum()])
        rows.append(torch.cat([torch.tensor(table.shape[:2], dtype=torch.float64), total]))
    return torch.stack(rows)


def loss_terms_share(config) -> str:
    """The ``loss_terms_share`` setting, checked."""
    value = setting(config, "loss_terms_share")
    if value not in LOSS_TERM_SHARING:
        raise ValueError(f"loss_terms_share must be one of {LOSS_TERM_SHARING}, not {value!r}")
    return value


def rows_of(unique: torch.Tensor) -> torch.Tensor:
    """id -> row of sorted ``unique`` ids (-1: absent): a dense map, as a binary search per id
    cost more than a step's cache saved on implicit data's 64 negatives each."""
    row = torch.full((int(unique[-1]) + 1,), -1, dtype=torch.long, device=unique.device)
    row[unique] = torch.arange(len(unique), device=unique.device)
    return row


def cached_rows(cached, ids: torch.Tensor) -> torch.Tensor | None:
    """The rows of a step's cache ``(rows_of(unique), values)`` for ``ids`` (any shape), or
    None when some id is not in it."""
    if cached is None:
        return None
    row, values = cached
    at = row[ids.clamp(max=len(row) - 1)]
    return values[at] if bool(((at >= 0) & (ids < len(row))).all()) else None


class FeatureSource(nn.Module):
    """d-dim features of items, of users in the auxiliary domain, and in the target domain."""

    def __init__(self, config, dataset, source: str, dim: int, user_rule: str = "reviews"):
        super().__init__()
        self.source = source
        cold_rule = setting(config, "cold_item_vectors")
        if cold_rule not in COLD_ITEM_RULES:
            raise ValueError(f"cold_item_vectors must be one of {COLD_ITEM_RULES}, not {cold_rule}")
        # an item without training interactions gets its interaction vector from its content
        self.maps_unseen_items = source in INTERACTION_SOURCES and cold_rule == "content"
        # The last coordinate of every item feature is pinned to 1, so the last coordinate of a
        # user feature is that user's rating bias -- generated with the rest of u_T.
        self.user_bias_coordinate = bool(config["user_bias_coordinate"])
        self._first_layer_cache = {}  # table -> (id -> row, first layer) in projected_once
        self._feature_cache = {}  # table -> (id -> row, feature) in projected_once (full)
        self.shares_step = loss_terms_share(config) == "step"
        hidden, dropout = int(config["mlp_hidden_size"]), float(config["dropout_prob"])
        dtype = vector_dtype(setting(config, "vector_dtype"))
        activation = setting(config, "activation")
        n_users, n_items = dataset.user_num, dataset.item_num
        if source in FROZEN_VECTOR_SOURCES:
            parts = []
            history = None  # what users' history vectors average, when not the item vectors
            if source in CONTENT_SOURCES:
                parts.append(dataset.load_features("items", "item_id", dtype)[0])
            if source in INTERACTION_SOURCES:
                dim_svd = int(config["interaction_vector_dim"])
                svd, svd_history = interaction_vector_tables(
                    dataset, dim_svd, setting(config, "interaction_vector_normalization")
                )
                if svd_history is not svd:  # symmetric_filter: users read the fold-in side
                    history = torch.cat([*parts, svd_history.to(dtype)], dim=1)
                if self.maps_unseen_items:
                    svd = _mapped_from_content(dataset, svd)
                parts.append(svd.to(dtype))
            # one part is used as is: a copy of a 4,096-dim table of the paper's 831k items
            # would double the largest allocation (13.6 GB)
            items = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            # kept apart (None when it is the item table) for new users' vectors
            self.register_buffer("history_only_vectors", history, persistent=False)
            self.history_scale = setting(config, "history_vector_scale")
            users_aux, users_target = user_vectors(
                user_rule,
                dataset,
                items if history is None else history,
                dtype,
                self.history_scale,
            )
            # Frozen vectors: buffers, not parameters, and left out of checkpoints (6.8-13.6 GB
            # at the paper's size): a checkpoint is always loaded into a model built from its
            # data set, which rebuilds them. Their fingerprint is kept, so a checkpoint refuses
            # tables that changed since it was trained.
            for name, table in zip(FROZEN_TABLES, (items, users_aux, users_target)):
                self.register_buffer(name, table, persistent=False)
            self.register_buffer("frozen_fingerprint", fingerprint(items, users_aux, users_target))
            self.item_mlp = ProjectionMLP(items.shape[1], hidden, dim, dropout, activation)
            # One user MLP for both domains: the same LLM reads both domains' reviews.
            self.user_mlp = ProjectionMLP(users_aux.shape[1], hidden, dim, dropout, activation)
        if source in ("collaborative", "fused"):
            std = float(setting(config, "init_std"))
            self.item_embedding = nn.Embedding(n_items, dim)
            self.user_aux_embedding = nn.Embedding(n_users, dim)
            self.user_target_embedding = nn.Embedding(n_users, dim)
            for emb in (self.item_embedding, self.user_aux_embedding, self.user_target_embedding):
                nn.init.normal_(emb.weight, std=std)
        # None where history_dropout can apply, else why not (the size search then skips its
        # candidates that name one)
        self.history_dropout_refusal = (
            None
            if source in FROZEN_VECTOR_SOURCES
            and user_rule == "history"
            and not dataset.is_explicit
            else "history_dropout rebuilds implicit history vectors: it needs user_vectors: "
            "history, a feature source of frozen vectors and implicit data (this run: "
            f"user_vectors={user_rule}, feature_source={source}, "
            f"{'explicit' if dataset.is_explicit else 'implicit'} data)"
        )
        self._start_history_dropout(config, dataset)

    def _start_history_dropout(self, config, dataset) -> None:
        """history_dropout > 0: in training, each user's auxiliary history vector is rebuilt
        from a random part of their items (user_history_vectors.dropped_history_vectors)."""
        self.history_dropout = checked_history_dropout(setting(config, "history_dropout"))
        if not self.history_dropout:
            return
        if self.history_dropout_refusal:
            raise ValueError(f"{self.history_dropout_refusal}; set it to 0")
        indptr, items = history_rows(dataset, target=False)
        self.register_buffer("aux_history_indptr", indptr, persistent=False)
        self.register_buffer("aux_history_items", items, persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # error_msgs, the last of load_state_dict's arguments, makes it raise with our message
        error_msgs = args[-1] if args else kwargs["error_msgs"]
        if hasattr(self, "frozen_fingerprint"):
            self._check_frozen_tables(state_dict, prefix, error_msgs)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check_frozen_tables(self, state_dict, prefix: str, error_msgs: list) -> None:
        """The checkpoint's frozen tables (their fingerprint; checkpoints written before the
        tables left them hold the tables themselves) against the ones rebuilt from the data."""
        mine = self.frozen_fingerprint
        key = prefix + "frozen_fingerprint"
        old_tables = [state_dict.pop(prefix + name, None) for name in FROZEN_TABLES]
        if key not in state_dict and all(t is not None for t in old_tables):
            state_dict[key] = fingerprint(*old_tables)
        saved = state_dict.get(key)
        if saved is None or saved.shape != mine.shape:
            return  # load_state_dict reports the missing or misshapen key itself
        changed = [
            name
            for name, a, b in zip(FROZEN_TABLES, saved.double(), mine.double())
            if not torch.allclose(a, b, rtol=1e-4, atol=1e-6)
        ]
        if changed:
            error_msgs.append(
                f"the frozen feature vectors {changed} built from the data set differ from "
                "those the checkpoint was trained on (were the feature tables or the training "
                "interactions changed since?); retrain, or restore the data it was trained on"
            )
        state_dict[key] = mine.clone()  # compared above: the tolerance covers thread counts

    # (frozen vectors, projection MLP, ID embedding): the attribute names of each feature
    _PARTS = {
        "items": ("item_vectors", "item_mlp", "item_embedding"),
        "users_aux": ("user_aux_vectors", "user_mlp", "user_aux_embedding"),
        "users_target": ("user_target_vectors", "user_mlp", "user_target_embedding"),
    }

    @contextmanager
    def projected_once(self, **ids_by_table: torch.Tensor):
        """Within the block, each named table is projected once for the given ids
        (``users_aux=..., items=...``): a training step asks for the same users and items in
        several loss terms (on implicit data the 64 negatives per positive touch almost every
        item in each term), and the MLP over them is most of the step's cost.
        ``loss_terms_share: step`` keeps each id's whole feature, so every term of the step
        sees the same dropout mask; ``first_layer`` keeps only the first layer's output over
        wide frozen vectors and lets each term draw its own mask (the numbers before ``step``).
        Ids outside the given ones are projected as usual."""
        for table, ids in ids_by_table.items():
            unique = torch.unique(ids)
            if not len(unique):
                continue
            if self.shares_step:
                self._feature_cache[table] = (rows_of(unique), self._project(table, unique))
            elif self.source in FROZEN_VECTOR_SOURCES and self._first_layer_is_wide(table):
                self._first_layer_cache[table] = (rows_of(unique), self._first_layer(table, unique))
        try:
            yield
        finally:
            self._first_layer_cache, self._feature_cache = {}, {}

    def _features(self, table: str, ids: torch.Tensor) -> torch.Tensor:
        cached = cached_rows(self._feature_cache.get(table), ids)
        if cached is not None:
            return cached
        if ids.dim() == 1 and len(ids) > 1:
            # a batch repeats users and items: project each one once (the MLP is the cost)
            unique, inverse = torch.unique(ids, return_inverse=True)
            if len(unique) < len(ids):
                return self._project(table, unique)[inverse]
        return self._project(table, ids)

    def _first_layer_is_wide(self, table: str) -> bool:
        """Whether caching the table's first layer pays: its rows are gathered at the hidden
        width instead of the input's, so only an input wider than the hidden layer gains
        (the demo's 1,153-dim user vectors, an MLLM's 4,096; not 64-dim interaction vectors)."""
        first = getattr(self, self._PARTS[table][1]).net[0]
        return first.in_features > first.out_features

    def _first_layer(self, table: str, ids: torch.Tensor) -> torch.Tensor:
        vectors, mlp, _ = self._PARTS[table]
        if table == "users_aux" and self._drops_history():
            rows = dropped_history_vectors(
                ids.flatten(),
                self.aux_history_indptr,
                self.aux_history_items,
                self.history_items,
                self.history_dropout,
                self.history_scale,
            ).view(*ids.shape, -1)
        else:
            rows = getattr(self, vectors)[ids]
        return getattr(self, mlp).first_layer(rows.float())

    def _drops_history(self) -> bool:
        """Whether this forward pass reads dropped-out auxiliary histories: training only."""
        return bool(self.history_dropout) and self.training and torch.is_grad_enabled()

    def _cached_first_layer(self, table: str, ids: torch.Tensor) -> torch.Tensor | None:
        return cached_rows(self._first_layer_cache.get(table), ids) if ids.dim() == 1 else None

    def _project(self, table: str, ids: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() and len(ids) > PROJECTION_CHUNK:
            # scoring every item: the rows go through the MLP a chunk at a time, so the float32
            # copy of the gathered vectors is a chunk's, not the table's (the paper's 722k
            # items x 4,096 dims: 11.8 GB)
            return torch.cat(
                [
                    self._project(table, ids[lo : lo + PROJECTION_CHUNK])
                    for lo in range(0, len(ids), PROJECTION_CHUNK)
                ]
            )
        _, mlp, embedding = self._PARTS[table]
        parts = []
        if self.source in FROZEN_VECTOR_SOURCES:
            first = self._cached_first_layer(table, ids)
            if first is None:
                first = self._first_layer(table, ids)
            parts.append(getattr(self, mlp).rest(first))
        if self.source in ("collaborative", "fused"):
            parts.append(getattr(self, embedding)(ids))
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def items(self, ids: torch.Tensor) -> torch.Tensor:
        features = self._features("items", ids)
        if self.user_bias_coordinate:
            features = torch.cat([features[..., :-1], torch.ones_like(features[..., :1])], -1)
        return features

    def users_aux(self, ids: torch.Tensor) -> torch.Tensor:
        return self._features("users_aux", ids)

    def users_target(self, ids: torch.Tensor) -> torch.Tensor:
        return self._features("users_target", ids)

    @property
    def history_items(self) -> torch.Tensor:
        """[n_items, D]: the vectors a user's history vector averages (the item vectors, or
        symmetric_filter's fold-in side)."""
        return self.item_vectors if self.history_only_vectors is None else self.history_only_vectors

    def new_user_aux_feature(
        self, rule: str, ids, ratings, domain_mean, review_vector=None
    ) -> torch.Tensor:
        """``u_A`` of a user who was not in training, by the model's own path (multimodal
        features): the user vector that ``rule`` builds -- their review vector, the vector of
        their auxiliary items and ratings, or both side by side -- through the user MLP."""
        parts = []
        if rule in ("reviews", "both"):
            if review_vector is None:
                raise ValueError(f"user_vectors={rule}: a new user's review vector is needed")
            parts.append(review_vector.float())
        if rule in ("history", "both"):
            parts.append(
                history_vector(
                    self.history_items[ids].float(), ratings, domain_mean, self.history_scale
                )
            )
        return self.user_mlp(torch.cat(parts)[None])[0]
