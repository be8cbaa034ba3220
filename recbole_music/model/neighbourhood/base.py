"""What the neighbourhood transfer models share: the training matrices, popularity, ratings.

A cold-start user has auxiliary interactions only. Each model turns them into a score for every
target item from the *bridge*: the training users with interactions in both domains (overlapping
training users). Every auxiliary interaction is training data (held-out users' included); target
interactions are those of training users only — a held-out user's target interaction in the
training data is refused.

Ranking: the model's neighbourhood score, divided by the user's largest absolute score, plus
``pop_weight`` times the target popularity (exact training counts, divided by the largest). A user
with no neighbourhood signal (no auxiliary item that co-occurs with a target item among bridge
users) is ranked by popularity alone; the trainer logs how many such users an evaluation had.

Ratings (explicit data): the item's damped mean target rating plus a model-specific predicted
deviation (:meth:`rating_deviations`), so MAE/RMSE are meaningful.

Hyper-parameters (``hyper_names``) have their defaults in ``properties/model/<Model>.yaml``, which
also holds the ``search_grid`` that :class:`recbole_music.trainer.hyper_search_trainer.HyperSearchTrainer` tries on validation users.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp
import torch
from recbole.utils import InputType, ModelType

from recbole_music.config import setting
from recbole_music.data.dataset import SplitPart
from recbole_music.model.target_domain_base import TargetDomainRecommender

SCORES_PER_CHUNK = 1 << 22  # dense scores built at once when predicting (user, item) pairs


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def damped_item_means(items, ratings, n_items: int, damping: float) -> np.ndarray:
    """``(sum of an item's ratings + damping * global mean) / (count + damping)`` per item."""
    mean = float(ratings.mean()) if len(ratings) else 0.0
    counts = np.bincount(items, minlength=n_items).astype(np.float64)
    sums = np.bincount(items, weights=ratings, minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums + damping * mean) / (counts + damping)
    return np.where(counts + damping > 0, means, mean)


class TransferRecommender(TargetDomainRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL  # fitted in one pass; the trainer searches the hyper-parameters
    hyper_names: tuple[str, ...] = ()
    rating_only: frozenset[str] = frozenset()  # hyper-parameters that move only rating predictions
    ranking_only = frozenset({"pop_weight"})  # ... and only the full ranking

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.predicts_ratings = self.explicit
        self.fake_loss = torch.nn.Parameter(torch.zeros(1))
        self.hyper = {name: self._checked(name, config[name]) for name in self.hyper_names}
        self.defaults = dict(self.hyper)  # the YAML's (or command line's) values
        self.search_grid = self._checked_grid(config["search_grid"])
        self._read_training_matrices(config, dataset)
        self.other_parameter_name = ["hyper"]  # the chosen values travel in the checkpoint
        self.reset_fallback_count()

    # -- hyper-parameters ------------------------------------------------------------------
    def _checked(self, name: str, value):
        where = f"{type(self).__name__}: '{name}'"
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"{where} must be a number, got {value!r} "
                f"(properties/model/{type(self).__name__}.yaml or --{name}=...)"
            )
        if value < 0:
            raise ValueError(f"{where} must be >= 0, got {value}")
        if name == "knn_neighbours" and not float(value).is_integer():
            raise ValueError(f"{where} must be a whole number, got {value}")
        return value

    def _checked_grid(self, grid) -> dict:
        grid = dict(grid or {})
        unknown = sorted(set(grid) - set(self.hyper_names))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: search_grid names {unknown}, which are not its "
                f"hyper-parameters {list(self.hyper_names)}"
            )
        for name, values in grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(
                    f"{type(self).__name__}: search_grid['{name}'] must be a non-empty list, "
                    f"got {values!r}"
                )
            grid[name] = [self._checked(name, value) for value in values]
        if not self.explicit:  # no ratings to predict: these would only repeat evaluations
            grid = {k: v for k, v in grid.items() if k not in self.rating_only}
        return grid

    def searched_grid(self, selects_on_ratings: bool = False) -> dict:
        """``search_grid`` less what cannot move the selection metric: selecting on MAE/RMSE,
        the ranking-only hyper-parameters keep their defaults."""
        if not selects_on_ratings:
            return dict(self.search_grid)
        return {k: v for k, v in self.search_grid.items() if k not in self.ranking_only}

    def search_candidates(self, selects_on_ratings: bool = False) -> list[dict]:
        """Every combination of the searched grid (other hyper-parameters at their defaults),
        the defaults first, so a tie keeps the YAML's values."""
        grid = self.searched_grid(selects_on_ratings)
        defaults = dict(self.defaults)
        names = list(grid)
        candidates = [defaults]
        for values in itertools.product(*(grid[n] for n in names)):
            candidate = {**defaults, **dict(zip(names, values))}
            if candidate not in candidates:
                candidates.append(candidate)
        return candidates

    def set_hyper(self, values: dict) -> None:
        self.hyper = {name: self._checked(name, values[name]) for name in self.hyper_names}
        self.refit()

    def load_other_parameter(self, para):
        super().load_other_parameter(para)
        self.refit()

    def refit(self) -> None:
        """Recompute what depends on ``self.hyper`` (cheap; the matrices stay)."""

    # -- training data ---------------------------------------------------------------------
    def _read_training_matrices(self, config, dataset) -> None:
        feat = dataset.inter_feat
        users = feat[dataset.uid_field].numpy()
        items = feat[dataset.iid_field].numpy()
        is_target = (feat[dataset.domain_field] == dataset.target_domain_id).numpy()
        held_out = dataset.user_split.numpy() != SplitPart.TRAIN
        leaked = is_target & held_out[users]
        if leaked.any():
            raise RuntimeError(
                f"{type(self).__name__}: the training data holds {int(leaked.sum())} target "
                f"interaction(s) of held-out users; it must be the train part of the split"
            )
        shape = (self.n_users, self.n_items)

        def matrix(rows, values=None):
            values = np.ones(int(rows.sum())) if values is None else values
            return sp.csr_matrix((values, (users[rows], items[rows])), shape=shape)

        self.aux = _binary(matrix(~is_target))
        self.target = _binary(matrix(is_target))
        bridge = (np.diff(self.aux.indptr) > 0) & (np.diff(self.target.indptr) > 0)
        self.bridge_users = np.flatnonzero(bridge)
        if not len(self.bridge_users):
            raise ValueError(
                f"{type(self).__name__}: no training user has interactions in both domains, so "
                f"nothing links auxiliary to target items (lower cold_ratio / valid_ratio)"
            )
        counts = np.bincount(items[is_target], minlength=self.n_items).astype(np.float32)
        self.popularity = counts / max(counts.max(), 1.0)
        if self.explicit:
            ratings = feat[dataset.rating_field].numpy().astype(np.float64)
            damping = float(setting(config, "damping"))
            self.item_mean = damped_item_means(
                items[is_target], ratings[is_target], self.n_items, damping
            ).astype(np.float32)
            aux_mean = damped_item_means(
                items[~is_target], ratings[~is_target], self.n_items, damping
            )
            # duplicates of a (user, item) pair are summed: the data has one rating per pair
            self.aux_deviation = matrix(
                ~is_target, ratings[~is_target] - aux_mean[items[~is_target]]
            )
            self.target_deviation = matrix(
                is_target, ratings[is_target] - self.item_mean[items[is_target]]
            )

    # -- what a subclass writes ------------------------------------------------------------
    def neighbourhood_scores(self, users: np.ndarray) -> np.ndarray:
        """Dense [len(users), n_items] ranking signal; an all-zero row = no signal."""
        raise NotImplementedError

    def rating_deviations(self, users: np.ndarray) -> np.ndarray:
        """Dense [len(users), n_items] predicted deviations from the item mean rating."""
        raise NotImplementedError

    # -- scoring ---------------------------------------------------------------------------
    def reset_fallback_count(self) -> None:
        self.scored_users = 0
        self.fallback_users = 0

    def cache_neighbourhood_scores(self, enabled: bool) -> None:
        """While on (the search), keep each batch's neighbourhood scores: candidates that differ
        only in ``pop_weight`` then reuse them instead of recomputing."""
        self._score_cache = {} if enabled else None

    def _neighbourhood_scores(self, users: np.ndarray) -> np.ndarray:
        cache = getattr(self, "_score_cache", None)
        if cache is None:
            return self.neighbourhood_scores(users)
        key = (tuple(v for k, v in self.hyper.items() if k != "pop_weight"), users.tobytes())
        if key not in cache:
            if cache and next(iter(cache))[0] != key[0]:
                cache.clear()  # other neighbourhood settings: the old scores are no use
            cache[key] = self.neighbourhood_scores(users)
        return cache[key]

    def ranking_scores(self, users: np.ndarray) -> np.ndarray:
        raw = np.ascontiguousarray(self._neighbourhood_scores(users), dtype=np.float32)
        scale = np.abs(raw).max(axis=1, keepdims=True)
        no_signal = scale[:, 0] == 0
        self.scored_users += len(users)
        self.fallback_users += int(no_signal.sum())
        scores = raw / np.where(scale > 0, scale, 1.0) + self.hyper["pop_weight"] * self.popularity
        scores[no_signal] = self.popularity
        return scores

    def _pair_scores(self, interaction, row_scores) -> torch.Tensor:
        """``row_scores(users)[user, item]`` for every pair, a chunk of users at a time."""
        users = interaction[self.USER_ID].cpu().numpy()
        items = interaction[self.ITEM_ID].cpu().numpy()
        unique, inverse = np.unique(users, return_inverse=True)
        out = np.empty(len(users), dtype=np.float32)
        step = max(SCORES_PER_CHUNK // self.n_items, 1)
        for start in range(0, len(unique), step):
            rows = row_scores(unique[start : start + step])
            pick = (inverse >= start) & (inverse < start + step)
            out[pick] = rows[inverse[pick] - start, items[pick]]
        return torch.from_numpy(out).to(self.device)

    def calculate_loss(self, interaction):
        return self.fake_loss

    def predict(self, interaction):
        if not self.explicit:
            return self._pair_scores(interaction, self.ranking_scores)
        return self._pair_scores(
            interaction, lambda users: self.item_mean + self.rating_deviations(users)
        )

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID].cpu().numpy()
        return torch.from_numpy(self.ranking_scores(users)).to(self.device).view(-1)
