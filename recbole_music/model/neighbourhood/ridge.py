"""RidgeTransfer: a ridge regression from a user's auxiliary row to their target row.

Among bridge users (training users with interactions in both domains), with ``X`` their binary
auxiliary rows and ``Y`` their binary target rows, the map ``W = argmin ||Y - X W||^2 +
lambda ||W||^2`` is, in closed form, ``W = X^T (X X^T + lambda I)^-1 Y``. A cold user with
auxiliary row ``x`` scores ``x W = (x X^T) (X X^T + lambda I)^-1 Y``: only the bridge users' Gram
matrix (bridge users x bridge users) is factorised, never an items x items one, so catalogues of
tens of thousands of items stay tractable. It is the auxiliary -> target block of an EASE-style
closed-form linear model (Steck 2019), not EASE on the merged matrix (which regresses each item on
all others, target items included, through a Gram matrix over every item). ``ridge_max_users``
bounds the factorised matrix (its memory is 4 bytes x bridge users^2, twice while factorising). Scores are blended with
popularity (:mod:`.base`). Ratings: the item's mean plus the same map applied to the bridge users'
target deviations from the item means (an unrated entry counts as no deviation).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from recbole_music.model.neighbourhood.base import TransferRecommender


class RidgeTransfer(TransferRecommender):
    hyper_names = ("ridge_lambda", "pop_weight")

    def _checked(self, name: str, value):
        value = super()._checked(name, value)
        if name == "ridge_lambda" and value <= 0:
            raise ValueError(f"RidgeTransfer: 'ridge_lambda' must be > 0, got {value}")
        return value

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        n_bridge, limit = len(self.bridge_users), int(config["ridge_max_users"])
        if n_bridge > limit:
            raise ValueError(
                f"RidgeTransfer: {n_bridge} bridge users (training users in both domains) exceed "
                f"ridge_max_users={limit}: the {n_bridge}^2 Gram matrix would need "
                f"{8 * n_bridge**2 / 2**30:.1f} GiB; raise --ridge_max_users if memory allows"
            )
        self.bridge_aux_t = self.aux[self.bridge_users].T.tocsr()  # items x bridge users
        self.bridge_target = self.target[self.bridge_users]
        if self.explicit:
            self.bridge_deviation = self.target_deviation[self.bridge_users]
        # float32 halves the time of the factorisation and the solves; lambda > 0 keeps the
        # system well conditioned (its eigenvalues are at least lambda)
        self.gram = (self.aux[self.bridge_users] @ self.bridge_aux_t).toarray().astype(np.float32)
        self._factor_lambda = None
        self.refit()

    def refit(self) -> None:
        lam = float(self.hyper["ridge_lambda"])
        if not hasattr(self, "gram") or lam == self._factor_lambda:
            return
        regularised = self.gram + np.float32(lam) * np.eye(len(self.gram), dtype=np.float32)
        self._factor = scipy.linalg.cho_factor(regularised, overwrite_a=True, check_finite=False)
        self._factor_lambda = lam

    def _bridge_weights(self, users) -> np.ndarray:
        """``(X X^T + lambda I)^-1 X x_u`` for each user: [bridge users, len(users)]."""
        kernel = (self.aux[users] @ self.bridge_aux_t).toarray().astype(np.float32)
        return scipy.linalg.cho_solve(self._factor, kernel.T, check_finite=False)

    def neighbourhood_scores(self, users):
        return (self.bridge_target.T @ self._bridge_weights(users)).T

    def rating_deviations(self, users):
        return (self.bridge_deviation.T @ self._bridge_weights(users)).T.astype(np.float32)
