"""UserKNNTransfer: a cold user's nearest bridge users on auxiliary items vote for target items.

Similarity of user ``u`` to bridge user ``v`` (a training user with interactions in both domains):
the cosine of their binary auxiliary rows with shrinkage,
``|A(u) & A(v)| / (sqrt(|A(u)|) sqrt(|A(v)|) + shrink)``. The ``knn_neighbours`` most similar
bridge users vote: ``s(u, t) = sum_v sim(u, v) [v has t]``, blended with popularity
(:mod:`.base`). Ratings: the item's mean plus
``sum_v sim(u, v) (r(v, t) - mean_t) / (sum_{v rated t} sim(u, v) + rating_shrink)``.
"""

from __future__ import annotations

import numpy as np

from recbole_music.model.neighbourhood.base import TransferRecommender


class UserKNNTransfer(TransferRecommender):
    hyper_names = ("knn_neighbours", "knn_shrink", "pop_weight", "rating_shrink")
    rating_only = frozenset({"rating_shrink"})

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.bridge_aux_t = self.aux[self.bridge_users].T.tocsr()  # items x bridge users
        self.bridge_target = self.target[self.bridge_users]
        self.bridge_norm = np.sqrt(np.diff(self.aux[self.bridge_users].indptr)).astype(np.float32)
        if self.explicit:
            self.bridge_deviation = self.target_deviation[self.bridge_users]

    def neighbour_weights(self, users) -> np.ndarray:
        """Dense [len(users), bridge users]: sim(u, v) for the k nearest ``v``, zero elsewhere."""
        user_aux = self.aux[users]
        shared = (user_aux @ self.bridge_aux_t).toarray().astype(np.float32)
        norm = np.sqrt(np.diff(user_aux.indptr)).astype(np.float32)[:, None] * self.bridge_norm
        sim = shared / (norm + float(self.hyper["knn_shrink"]) + 1e-12)
        k = int(self.hyper["knn_neighbours"])
        if 0 < k < sim.shape[1]:
            below = np.argpartition(-sim, k, axis=1)[:, k:]  # all but the k largest
            np.put_along_axis(sim, below, 0.0, axis=1)
        return sim

    def neighbourhood_scores(self, users):
        return (self.bridge_target.T @ self.neighbour_weights(users).T).T

    def rating_deviations(self, users):
        weights = self.neighbour_weights(users).T
        weighted = (self.bridge_deviation.T @ weights).T
        total = (self.bridge_target.T @ weights).T
        return weighted / (total + float(self.hyper["rating_shrink"]) + 1e-12)
