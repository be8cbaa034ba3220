"""ItemKNNTransfer: target items scored by their co-occurrence with the user's auxiliary items.

Among bridge users (training users with interactions in both domains), ``C[a, t]`` counts the
users who have auxiliary item ``a`` and target item ``t``. The similarity is an asymmetric cosine
with shrinkage,

    sim(a, t) = C[a, t] / (n_a ** alpha * n_t ** (1 - alpha) + shrink),

``n_a`` / ``n_t`` = bridge users with ``a`` / with ``t`` (``alpha = 0.5``: the cosine), and each
target item keeps its ``knn_neighbours`` most similar auxiliary items (0: all). A cold user ``u``
with auxiliary items ``A(u)`` scores ``s(u, t) = sum_{a in A(u)} sim(a, t)``, blended with
popularity (:mod:`.base`). Ratings: the item's mean plus the similarity-weighted auxiliary
deviations of the user, ``sum_a sim(a, t) d(u, a) / (sum_a sim(a, t) + rating_shrink)`` with
``d(u, a)`` = the user's rating of ``a`` minus ``a``'s mean rating.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recbole_music.model.neighbourhood.base import TransferRecommender


def keep_top_per_column(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest entries of every column (ties: lower row first); ``k = 0`` keeps all."""
    if k <= 0:
        return matrix
    coo = matrix.tocoo()
    order = np.lexsort((coo.row, -coo.data, coo.col))
    cols = coo.col[order]
    first_of_column = np.searchsorted(cols, cols, side="left")
    keep = order[np.arange(len(order)) - first_of_column < k]
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=matrix.shape)


class ItemKNNTransfer(TransferRecommender):
    hyper_names = ("knn_neighbours", "knn_shrink", "knn_alpha", "pop_weight", "rating_shrink")
    rating_only = frozenset({"rating_shrink"})

    def _checked(self, name: str, value):
        value = super()._checked(name, value)
        if name == "knn_alpha" and value > 1:
            raise ValueError(f"ItemKNNTransfer: 'knn_alpha' must be in [0, 1], got {value}")
        return value

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        bridge_aux = self.aux[self.bridge_users]
        bridge_target = self.target[self.bridge_users]
        self.cooccurrence = (bridge_aux.T @ bridge_target).tocsr()  # aux items x target items
        self.aux_count = np.asarray(bridge_aux.sum(axis=0)).ravel()
        self.target_count = np.asarray(bridge_target.sum(axis=0)).ravel()
        self.refit()

    def refit(self) -> None:
        if not hasattr(self, "cooccurrence"):
            return  # set_hyper before the matrices exist (base __init__)
        alpha, shrink = float(self.hyper["knn_alpha"]), float(self.hyper["knn_shrink"])
        coo = self.cooccurrence.tocoo()
        norm = self.aux_count[coo.row] ** alpha * self.target_count[coo.col] ** (1 - alpha)
        sim = sp.csr_matrix(
            (coo.data / (norm + shrink), (coo.row, coo.col)), shape=self.cooccurrence.shape
        )
        self.similarity = keep_top_per_column(sim, int(self.hyper["knn_neighbours"]))

    def neighbourhood_scores(self, users):
        return (self.aux[users] @ self.similarity).toarray()

    def rating_deviations(self, users):
        weighted = (self.aux_deviation[users] @ self.similarity).toarray()
        weights = (self.aux[users] @ self.similarity).toarray()
        return weighted / (weights + float(self.hyper["rating_shrink"]) + 1e-12)
