"""Where MuSiC's item and user features come from: the ``feature_source`` setting.

* ``multimodal`` — the paper: frozen vectors from ``dataset_prep features`` (items: MLLM over
  image + text; users: LLM over their reviews, one vector per domain), each through a tanh MLP;
* ``collaborative`` — learned ID embeddings trained by the rating losses (the paper's
  "w/o MLLM" ablation): items one embedding, users one per domain;
* ``fused`` — both, summed, so the diffusion can work on what the interactions know where
  content alone transfers poorly (short titles, sparse text);
* ``auto`` (default) — ``multimodal`` when the dataset has the feature tables, else
  ``collaborative``, with a warning that says so.

A user's *target* vector is read only for users whose target interactions are in training
(side users, training overlap users): held-out users' target reviews are test information.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from recbole_music.model.projection import ProjectionMLP

FEATURE_SOURCES = ("multimodal", "collaborative", "fused")
FEATURE_TABLES = {"items": "item_id", "users_aux": "user_id", "users_target": "user_id"}


def resolve_feature_source(requested: str, dataset) -> str:
    requested = (requested or "auto").lower()
    folder = dataset.feature_path()
    present = all((folder / f"{table}.json").is_file() for table in FEATURE_TABLES)
    if requested == "auto":
        if present:
            return "multimodal"
        logging.getLogger().warning(
            "MuSiC: no feature tables in %s (items, users_aux, users_target) -> "
            "feature_source=collaborative (learned ID embeddings, the paper's 'w/o MLLM'). "
            "Run `python -m dataset_prep features --dataset %s` for multimodal features.",
            folder,
            dataset.dataset_name,
        )
        return "collaborative"
    if requested not in FEATURE_SOURCES:
        raise ValueError(
            f"feature_source must be auto or one of {FEATURE_SOURCES}, got {requested}"
        )
    if requested != "collaborative" and not present:
        raise FileNotFoundError(
            f"feature_source={requested} needs the feature tables items, users_aux and "
            f"users_target in {folder}; run `python -m dataset_prep features --dataset "
            f"{dataset.dataset_name}` or use feature_source=collaborative"
        )
    return requested


class FeatureSource(nn.Module):
    """d-dim features of items, of users in the auxiliary domain, and in the target domain."""

    def __init__(self, config, dataset, source: str, dim: int):
        super().__init__()
        self.source = source
        hidden, dropout = int(config["mlp_hidden_size"]), float(config["dropout_prob"])
        activation = config["activation"] or "tanh"
        n_users, n_items = dataset.user_num, dataset.item_num
        if source in ("multimodal", "fused"):
            items, _ = dataset.load_features("items", "item_id")
            users_aux, self._aux_ok = dataset.load_features("users_aux", "user_id")
            users_target, self._target_ok = dataset.load_features("users_target", "user_id")
            # Frozen LLM vectors: buffers, not parameters (they ride along in checkpoints).
            self.register_buffer("item_vectors", items)
            self.register_buffer("user_aux_vectors", users_aux)
            self.register_buffer("user_target_vectors", users_target)
            self.item_mlp = ProjectionMLP(items.shape[1], hidden, dim, dropout, activation)
            # One user MLP for both domains: the same LLM reads both domains' reviews.
            self.user_mlp = ProjectionMLP(users_aux.shape[1], hidden, dim, dropout, activation)
        if source in ("collaborative", "fused"):
            std = float(config["init_std"] or 0.1)
            self.item_embedding = nn.Embedding(n_items, dim)
            self.user_aux_embedding = nn.Embedding(n_users, dim)
            self.user_target_embedding = nn.Embedding(n_users, dim)
            for emb in (self.item_embedding, self.user_aux_embedding, self.user_target_embedding):
                nn.init.normal_(emb.weight, std=std)

    # (frozen vectors, projection MLP, ID embedding): the attribute names of each feature
    _PARTS = {
        "items": ("item_vectors", "item_mlp", "item_embedding"),
        "users_aux": ("user_aux_vectors", "user_mlp", "user_aux_embedding"),
        "users_target": ("user_target_vectors", "user_mlp", "user_target_embedding"),
    }

    def _features(self, table: str, ids: torch.Tensor) -> torch.Tensor:
        vectors, mlp, embedding = self._PARTS[table]
        parts = []
        if self.source in ("multimodal", "fused"):
            parts.append(getattr(self, mlp)(getattr(self, vectors)[ids]))
        if self.source in ("collaborative", "fused"):
            parts.append(getattr(self, embedding)(ids))
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def items(self, ids: torch.Tensor) -> torch.Tensor:
        return self._features("items", ids)

    def users_aux(self, ids: torch.Tensor) -> torch.Tensor:
        return self._features("users_aux", ids)

    def users_target(self, ids: torch.Tensor) -> torch.Tensor:
        return self._features("users_target", ids)
