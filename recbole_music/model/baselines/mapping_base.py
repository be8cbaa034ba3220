"""What the embedding-and-mapping baselines (EMCDR, SSCDR, LACDR, PTUPCDR, DiffCDR) share.

Each holds the pretrained base MF vectors of both domains (:mod:`base_mf`, loaded by
:class:`~recbole_music.trainer.mapping_trainer.MappingTrainer` before the mapping stage) as
frozen buffers, and learns only its own mapping ``f``: source user vector → target user vector.

* A user whose target interactions are in training (side and training-overlap users) is scored
  with their own target MF vector; a held-out (cold-start) user — or an auxiliary-only one —
  with the mapped vector ``f(u_S)``. A rating / score is ``offset_i + <u_T, v_i>`` with the target
  MF's item vector and offset (``mu + b_i``): a dot product plus the biases the base MF has.
* The mapping trains on overlapping **training** users only. :meth:`target_vectors_for_training`
  is the one door to the target MF's user vectors during training, and refuses any user whose
  target interactions are not in the training split; :meth:`calculate_loss` refuses a batch with
  target interactions of held-out users.
* :meth:`stage_rows` says which training interactions the mapping stage iterates over; each
  subclass writes :meth:`map_users` (differentiable) and :meth:`mapping_loss`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from recbole.utils import InputType, ModelType

from recbole_music.config import setting
from recbole_music.data.dataset import SplitPart, UserRole
from recbole_music.model.baselines.base_mf import BaseVectors, vector_size
from recbole_music.model.target_domain_base import TargetDomainRecommender

logger = logging.getLogger()


class MappingRecommender(TargetDomainRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.GENERAL
    uses_base_mf = True
    config_layers = ("base_mf.yaml",)  # properties/: the base MFs' settings, shared

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.predicts_ratings = self.explicit
        self.dim = int(config["embedding_size"])
        self.vec_dim = vector_size(self.dim, self.explicit)
        self.num_negatives = int(setting(config, "num_negatives"))
        self._register_user_groups(dataset)
        n_users, n_items, width = self.n_users, self.n_items, self.vec_dim
        for name, shape in (
            ("src_user", (n_users, width)),
            ("src_item", (n_items, width)),
            ("src_offset", (n_items,)),
            ("tgt_user", (n_users, width)),
            ("tgt_item", (n_items, width)),
            ("tgt_offset", (n_items,)),
        ):
            self.register_buffer(name, torch.zeros(shape))
        self.register_buffer("base_loaded", torch.tensor(False))
        feat = dataset.inter_feat
        is_target = feat[dataset.domain_field] == dataset.target_domain_id
        self.register_buffer("target_items", torch.nonzero(dataset.target_item_mask).flatten())
        self.register_buffer("aux_items", torch.unique(feat[dataset.iid_field][~is_target]))
        self._cold = None

    # -- who is who ------------------------------------------------------------------------
    def _register_user_groups(self, dataset):
        role, split = dataset.user_role, dataset.user_split
        overlap = role == UserRole.OVERLAP
        self.register_buffer("is_train_overlap", overlap & (split == SplitPart.TRAIN))
        self.register_buffer("is_held_out", overlap & (split != SplitPart.TRAIN))
        self.register_buffer("has_source", overlap | (role == UserRole.AUX_ONLY))
        # users whose own target MF vector was trained: side and training-overlap users
        self.register_buffer("has_target", self.is_train_overlap | (role == UserRole.SIDE))
        if not self.is_train_overlap.any():
            raise ValueError(
                f"{type(self).__name__} learns its mapping from overlapping users whose target "
                f"interactions are in training; this split has none (lower cold_ratio / "
                f"valid_ratio)"
            )

    def stage_rows(self, dataset) -> np.ndarray:
        """Rows of the training split the mapping stage iterates over (default: one target
        interaction per training-overlap user — a batch is a batch of users)."""
        return self.first_row_per_user(dataset, self.training_overlap_target_rows(dataset))

    def training_overlap_target_rows(self, dataset) -> np.ndarray:
        feat = dataset.inter_feat
        users = feat[dataset.uid_field]
        target = feat[dataset.domain_field] == dataset.target_domain_id
        return np.flatnonzero((target & self.is_train_overlap.cpu()[users]).numpy())

    @staticmethod
    def first_row_per_user(dataset, rows: np.ndarray) -> np.ndarray:
        users = dataset.inter_feat[dataset.uid_field].numpy()[rows]
        _, first = np.unique(users, return_index=True)
        return np.sort(rows[first])

    # -- the pretrained base ---------------------------------------------------------------
    def load_base(self, base: BaseVectors) -> None:
        for name in ("src_user", "src_item", "src_offset", "tgt_user", "tgt_item", "tgt_offset"):
            value = getattr(base, name)
            buffer = getattr(self, name)
            if value.shape != buffer.shape:
                raise ValueError(
                    f"base MF '{name}' has shape {tuple(value.shape)}, the model expects "
                    f"{tuple(buffer.shape)} (another dataset or embedding_size?)"
                )
            buffer.copy_(value.to(buffer))
        self.base_loaded.fill_(True)
        self._cold = None
        self.after_base_loaded()

    def after_base_loaded(self) -> None:
        """Hook for models that derive something from the base vectors."""

    def target_vectors_for_training(self, users: torch.Tensor) -> torch.Tensor:
        """Target MF user vectors used as supervision; only users trained in the target domain."""
        if not self.has_target[users].all():
            bad = users[~self.has_target[users]]
            kind = "held-out (valid/test)" if self.is_held_out[bad].any() else "auxiliary-only"
            raise RuntimeError(
                f"{type(self).__name__}: the mapping asked for the target vectors of "
                f"{len(bad)} {kind} user(s): their target interactions are not training data"
            )
        return self.tgt_user[users]

    # -- what each baseline defines ----------------------------------------------------------
    def map_users(self, users: torch.Tensor) -> torch.Tensor:
        """[B, D]: the mapped (target-domain) vectors of ``users`` from their source vectors."""
        raise NotImplementedError

    def mapping_loss(self, interaction) -> torch.Tensor:
        raise NotImplementedError

    def calculate_loss(self, interaction):
        if not bool(self.base_loaded):
            raise RuntimeError(
                f"{type(self).__name__}: the base MF is not loaded; train with MappingTrainer"
            )
        users = interaction[self.USER_ID]
        target = self.target_rows(interaction)
        if self.is_held_out[users[target]].any():
            raise RuntimeError(
                f"{type(self).__name__}: the mapping stage got target interactions of held-out "
                f"(valid/test) users"
            )
        return self.mapping_loss(interaction)

    # -- scoring ---------------------------------------------------------------------------
    def train(self, mode: bool = True):
        self._cold = None  # the mapping may change: mapped vectors are recomputed
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        self._cold = None  # e.g. the best epoch reloaded from its checkpoint
        return super().load_state_dict(*args, **kwargs)

    @torch.no_grad()
    def cold_user_vectors(self) -> torch.Tensor:
        """[n_users, D]: mapped vectors of every user without target training data but with a
        source vector (held-out and auxiliary-only users), zeros elsewhere; computed once per
        evaluation, all users together (so a user's vector never depends on the batch)."""
        if self._cold is None:
            need = torch.nonzero(~self.has_target & self.has_source).flatten()
            out = torch.zeros_like(self.tgt_user)
            for start in range(0, len(need), 8192):
                chunk = need[start : start + 8192]
                out[chunk] = self.map_users(chunk)
            self._cold = out
        return self._cold

    def user_target_vectors(self, users: torch.Tensor) -> torch.Tensor:
        own = self.tgt_user[users]
        cold = ~self.has_target[users]
        if not cold.any():
            return own
        return torch.where(cold[:, None], self.cold_user_vectors()[users], own)

    def score(self, user_vec: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (user_vec * self.tgt_item[items]).sum(-1) + self.tgt_offset[items]

    def target_task_loss(self, user_vec, items, ratings) -> torch.Tensor:
        """Task-oriented loss in the target domain with the target MF's items (frozen): MSE on
        ratings; on implicit data BCE against ``num_negatives`` sampled target items."""
        if self.explicit:
            return F.mse_loss(self.score(user_vec, items), ratings.float())
        k = self.num_negatives
        pick = torch.randint(len(self.target_items), (len(items) * k,), device=items.device)
        logits = torch.cat(
            [
                self.score(user_vec, items),
                self.score(user_vec.repeat_interleave(k, 0), self.target_items[pick]),
            ]
        )
        labels = torch.cat([torch.ones(len(items)), torch.zeros(len(items) * k)]).to(logits)
        return F.binary_cross_entropy_with_logits(logits, labels)

    def predict(self, interaction):
        users = interaction[self.USER_ID]
        return self.score(self.user_target_vectors(users), interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID]
        scores = self.user_target_vectors(users) @ self.tgt_item.T + self.tgt_offset[None, :]
        return scores.view(-1)


def aux_history(dataset, min_rating: float | None, max_len: int):
    """(items [n_users, L], mask [n_users, L]) of every user's auxiliary-domain items, from the
    training split (which holds every auxiliary interaction). On ratings only items rated
    ``>= min_rating`` are kept (PTUPCDR's "positive" history), falling back to all of the
    user's items when none is; at most ``max_len`` per user, the latest rows kept."""
    feat = dataset.inter_feat
    aux = (feat[dataset.domain_field] != dataset.target_domain_id).numpy()
    users = feat[dataset.uid_field].numpy()[aux]
    items = feat[dataset.iid_field].numpy()[aux]
    keep = np.ones(len(users), dtype=bool)
    if dataset.is_explicit and min_rating is not None:
        positive = feat[dataset.rating_field].numpy()[aux] >= float(min_rating)
        has_positive = np.bincount(users[positive], minlength=dataset.user_num) > 0
        keep = positive | ~has_positive[users]
    users, items = users[keep], items[keep]
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    counts = np.bincount(users, minlength=dataset.user_num)
    width = max(1, min(int(max_len), int(counts.max()) if len(counts) else 1))
    out = np.zeros((dataset.user_num, width), dtype=np.int64)
    mask = np.zeros((dataset.user_num, width), dtype=bool)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(users)) - starts[users]
    from_end = counts[users] - 1 - position  # 0 = the user's last row
    take = from_end < width
    slot = np.minimum(counts[users], width) - 1 - from_end
    out[users[take], slot[take]] = items[take]
    mask[users[take], slot[take]] = True
    return torch.from_numpy(out), torch.from_numpy(mask)
