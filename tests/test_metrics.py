"""RatedNDCG (the MuSiC paper's rated-items NDCG) against values computed by hand.

MAE/RMSE and the full-ranking metrics as the evaluator computes them: test_cold_start_evaluator.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from recbole.evaluator.collector import DataStruct

from recbole_music.evaluation.metrics import RatedNDCG, rated_ndcg_per_user


def _log2(x):
    return math.log(x, 2)


# -- RatedNDCG by hand ----------------------------------------------------------------------
# user 7: scores 0.9, 0.5, 0.5 (tie), 0.1 with ratings 3, 5, 1, 4. Ties keep input order, so the
#   ranking is 3, 5, 1, 4: gains 7, 31, 1, 15. @2: DCG = 7 + 31/log2(3), IDCG = 31 + 15/log2(3).
# user 2: two items, ranked correctly: NDCG = 1 whatever K.
# user 5: scores 3, 2, 1 with ratings 1, 2, 5 (worst order). @2: DCG = 1 + 3/log2(3),
#   IDCG = 31 + 3/log2(3).
USERS = np.array([7, 2, 5, 7, 7, 5, 2, 5, 7])
SCORES = np.array([0.9, 0.2, 3.0, 0.5, 0.5, 2.0, 0.8, 1.0, 0.1])
RATINGS = np.array([3, 2, 1, 5, 1, 2, 4, 5, 4], dtype=float)

U7_AT2 = (7 + 31 / _log2(3)) / (31 + 15 / _log2(3))
U5_AT2 = (1 + 3 / _log2(3)) / (31 + 3 / _log2(3))
U7_AT3 = (7 + 31 / _log2(3) + 1 / _log2(4)) / (31 + 15 / _log2(3) + 7 / _log2(4))
U5_AT3 = (1 + 3 / _log2(3) + 31 / _log2(4)) / (31 + 3 / _log2(3) + 1 / _log2(4))


def test_rated_ndcg_per_user_matches_hand_values_with_ties_and_small_k():
    at2 = rated_ndcg_per_user(USERS, SCORES, RATINGS, k=2)
    assert at2 == pytest.approx([1.0, U5_AT2, U7_AT2])  # sorted user order: 2, 5, 7
    at3 = rated_ndcg_per_user(USERS, SCORES, RATINGS, k=3)
    assert at3 == pytest.approx([1.0, U5_AT3, U7_AT3])
    # K at least the number of rated items of everyone: the whole list counts
    at10 = rated_ndcg_per_user(USERS, SCORES, RATINGS, k=10)
    u7_all = (7 + 31 / _log2(3) + 1 / _log2(4) + 15 / _log2(5)) / (
        31 + 15 / _log2(3) + 7 / _log2(4) + 1 / _log2(5)
    )
    assert at10[2] == pytest.approx(u7_all)


def test_rated_ndcg_tie_order_is_the_input_order():
    # swapping the two tied rows of user 7 (ratings 5 and 1) puts the 1-star item first
    swapped = [0, 1, 2, 4, 3, 5, 6, 7, 8]
    at2 = rated_ndcg_per_user(USERS[swapped], SCORES[swapped], RATINGS[swapped], k=2)
    assert at2[2] == pytest.approx((7 + 1 / _log2(3)) / (31 + 15 / _log2(3)))


def test_rated_ndcg_metric_class_averages_over_users():
    struct = DataStruct()
    struct.set("rec.score", torch.tensor(SCORES, dtype=torch.float).view(-1, 1))
    struct.set("data.label", torch.tensor(RATINGS, dtype=torch.float).view(-1, 1))
    struct.set("data.user_id", torch.tensor(USERS).view(-1, 1))
    metric = RatedNDCG({"topk": [2, 3], "metric_decimal_place": 6})
    out = metric.calculate_metric(struct)
    assert set(out) == {"ratedndcg@2", "ratedndcg@3"}
    assert out["ratedndcg@2"] == pytest.approx((1 + U5_AT2 + U7_AT2) / 3, abs=1e-6)
    assert out["ratedndcg@3"] == pytest.approx((1 + U5_AT3 + U7_AT3) / 3, abs=1e-6)


@pytest.mark.parametrize("shape", [(1,), (1, 1)])
def test_rated_ndcg_of_a_single_pair(shape):
    struct = DataStruct()
    struct.set("rec.score", torch.tensor([2.5]).view(shape))
    struct.set("data.label", torch.tensor([4.0]).view(shape))
    struct.set("data.user_id", torch.tensor([3]).view(shape))
    out = RatedNDCG({"topk": [20], "metric_decimal_place": 4}).calculate_metric(struct)
    assert out == {"ratedndcg@20": 1.0}
