"""The cold-start evaluator on a tiny dataset with a model of fixed scores: MAE/RMSE, rated-items
NDCG and full-ranking NDCG/Recall/Hit/MRR/Precision against values computed by hand
(independently of the implementation); masking of auxiliary and training items; the predict
fallback; which models and data get which metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import build_split, make_config

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _log2(x):
    return math.log(x, 2)


class FixedScores(torch.nn.Module):
    """Scores from a fixed [n_users, n_items] table; records the items ``predict`` was asked."""

    def __init__(self, table, dataset, *, full_sort=True, predicts_ratings=True, ranks=True):
        super().__init__()
        self.table = table
        self.uid, self.iid = dataset.uid_field, dataset.iid_field
        self.full_sort = full_sort
        self.predicts_ratings = predicts_ratings
        self.ranks_items = ranks
        self.predicted_items: list[torch.Tensor] = []

    def predict(self, interaction):
        items = interaction[self.iid]
        self.predicted_items.append(items)
        return self.table[interaction[self.uid], items]

    def full_sort_predict(self, interaction):
        if not self.full_sort:
            raise NotImplementedError
        return self.table[interaction[self.uid]].reshape(-1)


def _score_table(data, seen: dict[int, list[int]], seed=0):
    """Distinct scores in [1, 5); aux items and 'seen' items get huge scores, so that a top-K
    that does not mask them is full of them."""
    rng = np.random.default_rng(seed)
    n_users, n_items = data.user_num, data.item_num
    table = 1 + 4 * rng.permutation(n_users * n_items).reshape(n_users, n_items) / (
        n_users * n_items
    )
    table[:, ~data.target_item_mask.numpy()] += 1e6
    for user, items in seen.items():
        table[user, items] += 1e5
    return torch.tensor(table, dtype=torch.float64)


def _test_pairs(split):
    feat = split.inter_feat
    users = feat[split.uid_field].numpy()
    items = feat[split.iid_field].numpy()
    ratings = feat[split.rating_field].numpy() if split.is_explicit else None
    return users, items, ratings


def _hand_ranking(data, split, table, seen, ks, mask=True, per_user=False):
    """Per-user full ranking over target items minus seen ones; mean NDCG/Recall/Hit/MRR/P@K
    (``per_user``: each user's values, in ascending user order, instead of the means)."""
    users, items, _ = _test_pairs(split)
    target = np.flatnonzero(data.target_item_mask.numpy())
    out = {f"{m}@{k}": [] for m in ("ndcg", "recall", "hit", "mrr", "precision") for k in ks}
    for user in sorted(set(users.tolist())):
        relevant = set(items[users == user].tolist())
        if mask:
            candidates = [i for i in target if i not in set(seen.get(user, []))]
        else:  # what an evaluator that forgot both masks would rank
            candidates = list(range(1, data.item_num))
        ranked = sorted(candidates, key=lambda i: -float(table[user, i]))
        for k in ks:
            top = ranked[:k]
            hits = [i in relevant for i in top]
            dcg = sum(1 / _log2(j + 2) for j, h in enumerate(hits) if h)
            idcg = sum(1 / _log2(j + 2) for j in range(min(len(relevant), k)))
            first = next((j for j, h in enumerate(hits) if h), None)
            out[f"ndcg@{k}"].append(dcg / idcg)
            out[f"recall@{k}"].append(sum(hits) / len(relevant))
            out[f"hit@{k}"].append(float(any(hits)))
            out[f"mrr@{k}"].append(0.0 if first is None else 1 / (first + 1))
            out[f"precision@{k}"].append(sum(hits) / k)
    if per_user:
        return out
    return {key: float(np.mean(values)) for key, values in out.items()}


def _hand_rating(split, table, ks):
    users, items, ratings = _test_pairs(split)
    pred = table[users, items].numpy()
    out = {
        "mae": float(np.mean(np.abs(pred - ratings))),
        "rmse": float(np.sqrt(np.mean((pred - ratings) ** 2))),
    }
    for k in ks:
        per_user = []
        for user in sorted(set(users.tolist())):
            p, r = pred[users == user], ratings[users == user]
            gains = 2.0**r - 1
            ranked = gains[np.argsort(-p)][:k]
            ideal = np.sort(gains)[::-1][:k]
            disc = [1 / _log2(j + 2) for j in range(len(ranked))]
            per_user.append(float(ranked @ disc) / float(ideal @ disc))
        out[f"ratedndcg@{k}"] = float(np.mean(per_user))
    return out


KS = [3, 10, 30]  # 30 > the 25 target items of the fixture
METRICS = ["NDCG", "Recall", "Hit", "MRR", "Precision"]


@pytest.fixture
def tiny_split(tiny_data_root):
    # eval_batch_size 60 < n_items: one user per ranking batch, two rating batches of 64 pairs
    overrides = dict(topk=KS, metrics=METRICS, metric_decimal_place=10, eval_batch_size=60)
    data, (train, valid, test) = build_split(**overrides)
    return data, train, test, make_config(**overrides)


def _with_seen_target_items(data, test, per_user=3):
    """The test split, where each test user has ``per_user`` target items in training (not
    their test items): the evaluator must not recommend them."""
    users, items, _ = _test_pairs(test)
    target = np.flatnonzero(data.target_item_mask.numpy())
    matrix = data.train_item_matrix.tolil(copy=True)
    seen = {}
    for user in sorted(set(users.tolist())):
        others = [i for i in target if i not in set(items[users == user].tolist())]
        seen[user] = others[:per_user]
        matrix[user, seen[user]] = 1
    view = test.copy(test.inter_feat)
    view.train_item_matrix = matrix.tocsr()
    return view, seen


def test_evaluator_matches_hand_values(tiny_split):
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator

    data, _, test, config = tiny_split
    view, seen = _with_seen_target_items(data, test)
    table = _score_table(data, seen)
    result = ColdStartEvaluator(config).evaluate(FixedScores(table, data), view)

    expected = _hand_rating(view, table, KS) | _hand_ranking(data, view, table, seen, KS)
    assert set(result) == set(expected)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-6), key
    # the test could fail: without masking, aux and seen items would fill every top-K
    unmasked = _hand_ranking(data, view, table, seen, KS, mask=False)
    assert unmasked["hit@10"] == 0.0 < result["hit@10"]
    assert result["ndcg@3"] != pytest.approx(
        _hand_ranking(data, view, table, {}, KS)["ndcg@3"], abs=1e-8
    )  # the seen-item mask changes the numbers


def test_per_user_ranking_gives_each_users_hand_values_and_the_reported_means(tiny_split):
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator

    data, _, test, config = tiny_split
    view, seen = _with_seen_target_items(data, test)
    table = _score_table(data, seen)
    evaluator = ColdStartEvaluator(config)
    users, values = evaluator.per_user_ranking(FixedScores(table, data), view)

    assert users.tolist() == sorted(set(_test_pairs(view)[0].tolist()))
    expected = _hand_ranking(data, view, table, seen, KS, per_user=True)
    assert set(values) == set(expected)
    reported = evaluator.evaluate(FixedScores(table, data), view)
    for key, per_user in expected.items():
        assert values[key] == pytest.approx(per_user, abs=1e-9), key
        assert values[key].mean() == pytest.approx(reported[key], abs=1e-9), key
    assert len(set(values["ndcg@10"].round(9))) > 1  # users differ: a broadcast mean would fail

    _, (_, empty, _) = build_split(valid_ratio=0.0)
    assert evaluator.per_user_ranking(FixedScores(table, data), empty)[1] == {}


def test_predict_fallback_gives_the_same_numbers_and_scores_only_target_items(tiny_split):
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator

    data, _, test, config = tiny_split
    view, seen = _with_seen_target_items(data, test)
    table = _score_table(data, seen)
    full = ColdStartEvaluator(config).evaluate(FixedScores(table, data), view)
    model = FixedScores(table, data, full_sort=False)
    fallback = ColdStartEvaluator(config).evaluate(model, view)
    assert fallback == full
    asked = torch.cat(model.predicted_items)
    assert len(asked) == len(test) + 8 * 25  # rating pass + 8 test users x 25 target items
    assert data.target_item_mask[asked].all()


def test_results_do_not_depend_on_the_batch_size(tiny_split):
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator

    data, _, test, config = tiny_split
    table = _score_table(data, {})
    small = ColdStartEvaluator(config).evaluate(FixedScores(table, data), test)
    config["eval_batch_size"] = 1_000_000
    large = ColdStartEvaluator(config).evaluate(FixedScores(table, data), test)
    assert small == large


def test_a_model_without_predicts_ratings_gets_no_mae_rmse(tiny_split):
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator

    data, _, test, config = tiny_split
    table = _score_table(data, {})
    result = ColdStartEvaluator(config).evaluate(
        FixedScores(table, data, predicts_ratings=False), test
    )
    assert "mae" not in result and "rmse" not in result
    assert result["ratedndcg@10"] == pytest.approx(_hand_rating(test, table, KS)["ratedndcg@10"])
    assert "ndcg@10" in result


def test_global_mean_gets_mae_rmse_and_no_ranking_metric(tiny_split):
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator
    from recbole_music.model.global_mean import GlobalMean

    data, train, test, _ = tiny_split
    config = make_config("GlobalMean", topk=KS, metrics=METRICS, metric_decimal_place=10)
    model = GlobalMean(config, train)
    result = ColdStartEvaluator(config).evaluate(model, test)
    assert set(result) == {"mae", "rmse"}
    feat = train.inter_feat
    mean = feat["rating"][feat["domain"] == data.target_domain_id].double().mean().item()
    _, _, ratings = _test_pairs(test)
    assert result["mae"] == pytest.approx(np.mean(np.abs(ratings - mean)), abs=1e-6)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((ratings - mean) ** 2)), abs=1e-6)


def test_implicit_data_gets_ranking_metrics_only(tiny_data_root):
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator

    overrides = dict(topk=KS, metrics=METRICS, metric_decimal_place=10)
    data, (_, _, test) = build_split(dataset="tiny_implicit", **overrides)
    assert not data.is_explicit
    config = make_config(dataset="tiny_implicit", **overrides)
    table = _score_table(data, {})
    result = ColdStartEvaluator(config).evaluate(FixedScores(table, data), test)
    expected = _hand_ranking(data, test, table, {}, KS)
    assert set(result) == set(expected)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-6), key


def test_a_single_held_out_pair_evaluates(tiny_split):
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator

    data, _, test, config = tiny_split
    one = test.copy(test.inter_feat[torch.tensor([0])])
    table = _score_table(data, {})
    result = ColdStartEvaluator(config).evaluate(FixedScores(table, data), one)
    (user,), (item,), (rating,) = _test_pairs(one)
    assert result["mae"] == pytest.approx(abs(float(table[user, item]) - rating))
    assert result["ratedndcg@3"] == 1.0
    assert result["recall@30"] == 1.0


def test_empty_split_gives_no_metrics_and_unknown_metrics_are_refused(tiny_data_root):
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator

    data, (_, valid, _) = build_split(valid_ratio=0.0)
    config = make_config(valid_ratio=0.0)
    assert (
        ColdStartEvaluator(config).evaluate(FixedScores(_score_table(data, {}), data), valid) == {}
    )
    config["metrics"] = ["NDCG", "AUC"]
    with pytest.raises(ValueError, match=r"\['auc'\] are not supported"):
        ColdStartEvaluator(config)


def test_unseen_items_get_the_users_mean_score_unless_the_model_scores_them(tiny_data_root):
    from recbole_music.data.dataset import SplitPart
    from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator

    overrides = dict(topk=KS, metrics=METRICS, metric_decimal_place=10, eval_batch_size=60)
    data, (_, _, test) = build_split(cold_item_ratio=0.2, **overrides)
    config = make_config(cold_item_ratio=0.2, **overrides)
    unseen = (data.item_split != SplitPart.TRAIN).numpy()
    warm = data.target_item_mask.numpy() & ~unseen
    table = _score_table(data, {})
    table[:, unseen] += 1e4  # what untrained parameters might say: every top-K full of them
    fallback = table.clone()
    fallback[:, unseen] = table[:, warm].mean(dim=1, keepdim=True)

    evaluator = ColdStartEvaluator(config)
    result = evaluator.evaluate(FixedScores(table, data), test)
    expected = _hand_rating(test, fallback, KS)
    for key in "mae", "rmse":
        assert result[key] == pytest.approx(expected[key], abs=1e-6), key
    # the ranking pass ranks the same scores (a user's unseen items tie, so no hand order)
    users = np.unique(test.inter_feat[test.uid_field].numpy())
    targets = torch.nonzero(data.target_item_mask).flatten()
    scores = evaluator._full_scores(
        FixedScores(table, data), test, users, targets, torch.from_numpy(unseen)
    )
    assert torch.allclose(scores[:, targets], fallback[users][:, targets].float())
    assert result["hit@3"] < 1.0  # not every top-3 filled by the +1e4 items

    # ratings fall back on predict's scale, whatever scale the full ranking has
    class RankingScale(FixedScores):
        def full_sort_predict(self, interaction):
            return 100 * super().full_sort_predict(interaction)

    scaled = ColdStartEvaluator(config).evaluate(RankingScale(table, data), test)
    assert scaled["rmse"] == pytest.approx(expected["rmse"], abs=1e-6)

    # a model that scores unseen items its own way is evaluated on its own scores
    own = FixedScores(table, data)
    own.unseen_item_scoring = "its content"
    raw = ColdStartEvaluator(config).evaluate(own, test)
    assert raw["rmse"] == pytest.approx(_hand_rating(test, table, KS)["rmse"], rel=1e-6)
    assert raw["rmse"] > 1000 > result["rmse"]
