"""SVDTransfer: a cold user's auxiliary items folded into a truncated SVD of the training matrix.

The binary training matrix ``R`` holds every training user's rows in both domains (auxiliary
rows of everyone, target rows of training users only), scaled as LightGCN's propagation and
GF-CF's filters scale it: ``R~ = D_u^-1/2 R D_i^-1/2`` with ``D_u``, ``D_i`` the user and item
interaction counts. ``V`` holds its top ``svd_rank`` right singular vectors. Overlapping users
link the two catalogues, so a singular vector spans auxiliary and target items that the same
people choose. A cold user with auxiliary row ``r`` scores the target items by

    s = (r D_i^-1/2 V) (D_i^1/2 V)^T

the ideal low-pass filter of GF-CF (Shen et al., CIKM 2021): the user's row smoothed onto the
matrix's dominant directions and read back on the target items. The SVD is taken once, at the
largest rank the run may ask for (the default and the search grid), and each candidate rank uses
its leading columns, so searching the rank factorises nothing again. Scores are blended with
popularity (:mod:`.base`); a user none of whose auxiliary items is held by a bridge user (a
training user in both domains) has no signal and is ranked by popularity. Ratings: the item's
mean plus the same filter applied to the user's auxiliary deviations from the item means.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recbole_music.model.degree_svd import degree_normalised, leading_right_singular_vectors
from recbole_music.model.neighbourhood.base import TransferRecommender


class SVDTransfer(TransferRecommender):
    hyper_names = ("svd_rank", "pop_weight")

    def _checked(self, name: str, value):
        value = super()._checked(name, value)
        if name == "svd_rank" and (value < 1 or not float(value).is_integer()):
            raise ValueError(f"SVDTransfer: 'svd_rank' must be a whole number >= 1, got {value}")
        return value

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        normalised, item_degree = degree_normalised(self.aux + self.target)
        ranks = [self.hyper["svd_rank"], *self.search_grid.get("svd_rank", [])]
        rank = min(int(max(ranks)), min(normalised.shape) - 1)
        if rank < 1:
            raise ValueError(f"SVDTransfer: the training matrix {normalised.shape} is too small")
        vectors = leading_right_singular_vectors(normalised, rank).astype(np.float32)
        scale = np.sqrt(item_degree).astype(np.float32)[:, None]
        self.fold_in = vectors / scale  # r D_i^-1/2 V
        is_target = dataset.target_item_mask.numpy()[:, None]
        self.read_out = vectors * scale * is_target  # D_i^1/2 V, auxiliary items scored 0
        # a user has a signal when one of their auxiliary items is held by a bridge user
        linked = (np.asarray(self.aux[self.bridge_users].sum(axis=0)).ravel() > 0).astype(float)
        self.has_signal = self.aux @ linked > 0

    def _filtered(self, rows: sp.csr_matrix, users) -> np.ndarray:
        rank = int(self.hyper["svd_rank"])
        scores = (rows @ self.fold_in[:, :rank]) @ self.read_out[:, :rank].T
        scores[~self.has_signal[users]] = 0.0  # the base ranks them by popularity
        return scores

    def neighbourhood_scores(self, users):
        return self._filtered(self.aux[users], users)

    def rating_deviations(self, users):
        return self._filtered(self.aux_deviation[users], users).astype(np.float32)
