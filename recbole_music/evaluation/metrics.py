"""Rated-items NDCG: the NDCG convention of the MuSiC paper, as a RecBole metric class.

RecBole's own ``NDCG`` ranks *all* items and counts the user's test items as hits (the
"full-ranking" convention, values ~0.01 on sparse data). The MuSiC paper instead ranks only the
items each test user actually rated, by predicted rating, with graded gains ``2^r - 1`` (values
~0.8). Both are reported side by side; this module provides the second one.
"""

from __future__ import annotations

import numpy as np
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType


def rated_ndcg_per_user(
    users: np.ndarray, scores: np.ndarray, ratings: np.ndarray, k: int
) -> np.ndarray:
    """NDCG@k of each user's own rated items ranked by score; gains 2^rating - 1.

    Returns one value per distinct user (in sorted user order). Ties in score keep the input
    order (stable sort), so the result is deterministic.
    """
    order = np.lexsort((-scores, users))  # by user, then by descending score (stable)
    users, scores, ratings = users[order], scores[order], ratings[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    values = np.empty(len(starts))
    for n, (start, end) in enumerate(zip(starts, ends)):
        gains = np.exp2(ratings[start:end]) - 1.0
        top = min(k, end - start)
        discounts = 1.0 / np.log2(np.arange(2, top + 2))
        dcg = float(gains[:top] @ discounts)
        idcg = float(np.sort(gains)[::-1][:top] @ discounts)
        values[n] = dcg / idcg if idcg > 0 else 0.0
    return values


class RatedNDCG(AbstractMetric):
    """NDCG@K over each user's rated test items (graded gains 2^r - 1), mean over users.

    A VALUE metric: it needs the predicted score, the true rating and the user id of every test
    (user, item) pair — RecBole's collector does not hand over user ids, so the cold-start
    evaluator of this plugin builds the data struct itself.
    """

    metric_type = EvaluatorType.VALUE
    metric_need = ["rec.score", "data.label", "data.user_id"]
    smaller = False

    def __init__(self, config):
        super().__init__(config)
        self.topk = config["topk"]

    def calculate_metric(self, dataobject):
        # reshape, not squeeze: a single pair must stay a 1-element vector, not a 0-d scalar
        scores = dataobject.get("rec.score").reshape(-1).numpy().astype(np.float64)
        ratings = dataobject.get("data.label").reshape(-1).numpy().astype(np.float64)
        users = dataobject.get("data.user_id").reshape(-1).numpy()
        return {
            f"ratedndcg@{k}": round(
                float(rated_ndcg_per_user(users, scores, ratings, k).mean()), self.decimal_place
            )
            for k in self.topk
        }


PLUGIN_METRICS = (RatedNDCG,)


def register_metrics() -> None:
    """Add our metric classes to RecBole's registries (idempotent).

    RecBole builds ``metrics_dict`` & co. once at import by scanning its own module; the
    registries are plain module-level containers shared by Config and Evaluator, so adding to
    them in place makes ``metrics: [RatedNDCG]`` a name RecBole's Config accepts.
    """
    from recbole.evaluator import register

    for metric_cls in PLUGIN_METRICS:
        name = metric_cls.__name__.lower()
        register.metrics_dict[name] = metric_cls
        register.metric_information[name] = metric_cls.metric_need
        register.metric_types[name] = metric_cls.metric_type
        if metric_cls.smaller and name not in register.smaller_metrics:
            register.smaller_metrics.append(name)
