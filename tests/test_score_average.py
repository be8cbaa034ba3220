"""size_search_average: the size search's candidates combined by ensemble selection on the
validation users, evaluated, saved and used for a new user as one model."""

import glob
import logging
import os

import pytest
import torch
from recbole.data.interaction import Interaction

import recbole_music.size_search as size_search
from recbole_music.checkpoint import (
    AVERAGE_MEMBERS,
    config_from_checkpoint,
    read_checkpoint,
    write_average_checkpoint,
)
from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator
from recbole_music.inference import AveragedRecommender, ColdStartRecommender
from recbole_music.model.music.model import MuSiC
from recbole_music.model.score_average import ScoreAverage, standardised
from recbole_music.quick_start import build_run, run_recbole_music
from recbole_music.size_search import TrainedCandidate, select_average

FAST = {"epochs": 3, "stage1_epochs": 1, "state": "ERROR", "show_progress": False}
HISTORY_VECTORS = {"feature_source": "interactions", "user_vectors": "history"}
SEARCH = {
    **FAST,
    **HISTORY_VECTORS,
    "interaction_vector_dim": 4,
    "interaction_size_search": [[8, 16]],
    "size_search_average": True,
}


class FixedScores(torch.nn.Module):
    """A model whose full ranking is a fixed [users, items] table and whose rating is a constant."""

    USER_ID, ITEM_ID = "user_id", "item_id"
    predicts_ratings = True

    def __init__(self, table, rating=3.0):
        super().__init__()
        self.table, self.rating = torch.as_tensor(table, dtype=torch.float), rating

    def full_sort_predict(self, interaction):
        return self.table[interaction[self.USER_ID]].reshape(-1)

    def predict(self, interaction):
        return torch.full((len(interaction[self.USER_ID]),), self.rating)


def test_standardised_puts_each_users_target_scores_on_one_scale():
    scores = torch.tensor([[1.0, 2.0, 3.0, 100.0], [5.0, 5.0, 5.0, 0.0]])
    target = torch.tensor([True, True, True, False])
    out = standardised(scores, target)
    assert torch.allclose(out[0, :3], torch.tensor([-1.0, 0.0, 1.0]) * (1.5**0.5))
    assert torch.equal(out[1, :3], torch.zeros(3))  # no spread: shifted, not divided by 0


def test_a_member_on_a_wider_scale_does_not_outvote_the_others():
    target = torch.tensor([True, True, True])
    a = FixedScores([[0.0, 1.0, 2.0]])
    b = FixedScores([[20.0, 10.0, 0.0]])  # the reverse order, ten times wider
    users = Interaction({"user_id": torch.tensor([0])})
    average = ScoreAverage([a, b], target)
    assert torch.allclose(average.full_sort_predict(users), torch.zeros(3), atol=1e-6)
    widened = ScoreAverage([a, FixedScores([[2000.0, 1000.0, 0.0]])], target)
    assert torch.allclose(widened.full_sort_predict(users), average.full_sort_predict(users))
    ratings = ScoreAverage([FixedScores([[0.0]], 2.0), FixedScores([[0.0]], 5.0)], target)
    assert torch.equal(ratings.predict(users), torch.tensor([3.5]))


def _candidate(name: str, score: float) -> TrainedCandidate:
    return TrainedCandidate(name, None, score, {"score": score}, {"name": name})


@pytest.mark.parametrize("bigger", [True, False])
def test_selection_adds_the_best_addition_while_it_strictly_improves(bigger):
    sign = 1 if bigger else -1
    a, b, c, d = (_candidate(n, sign * s) for n, s in zip("abcd", (0.30, 0.29, 0.28, 0.10)))
    # average score by members: {a, c} beats {a, b}; adding b then helps, d never does
    table = {"ac": 0.33, "ab": 0.31, "ad": 0.2, "abc": 0.34, "acd": 0.32, "abcd": 0.34}

    def average(members):
        key = "".join(sorted(m.model for m in members))
        return sign * table[key], {}

    config = {"valid_metric_bigger": bigger, "valid_metric": "NDCG@20"}
    members, score, _ = select_average([a, b, c, d], a, average, config, logging.getLogger())
    assert [m.model for m in members] == ["a", "c", "b"]  # abcd only ties abc: not added
    assert score == sign * 0.34


def test_selection_keeps_the_best_alone_when_no_average_beats_it():
    a, b = _candidate("a", 0.3), _candidate("b", 0.2)
    config = {"valid_metric_bigger": True, "valid_metric": "NDCG@20"}
    members, score, result = select_average(
        [a, b], a, lambda m: (0.3, {}), config, logging.getLogger()
    )
    assert members == [a] and score == 0.3 and result == {"score": 0.3}


def test_without_an_improving_average_the_run_is_the_plain_search(tiny_data_root):
    config = {**SEARCH, "interaction_size_search": [[8, 16]]}
    averaged = run_recbole_music("MuSiC", "tiny", config_dict=config, saved=False)
    plain = run_recbole_music(
        "MuSiC", "tiny", config_dict={**config, "size_search_average": False}, saved=False
    )
    rows = averaged["run"]["size_search"]
    assert all("averaged" in row for row in rows)
    chosen = [row for row in rows if row["chosen"]]
    assert chosen[0]["averaged"]
    # the average only ever beats the best alone on validation (RMSE: smaller is better)
    assert averaged["best_valid_score"] <= min(row["valid_score"] for row in rows)
    if sum(row["averaged"] for row in rows) == 1:  # the best alone: the plain search's model
        assert averaged["test_result"] == plain["test_result"]
        assert averaged["best_valid_score"] == plain["best_valid_score"]
    else:
        assert averaged["best_valid_score"] < plain["best_valid_score"]


@pytest.fixture
def forced_average(monkeypatch):
    """Every candidate joins the average, whatever the validation users say: the run's path
    with several members, on fixtures too small for an average to win on its own."""
    real = size_search.select_average

    def every_candidate(trained, best, average, config, logger):
        members = [best, *[c for c in trained if c is not best]]
        score, result = average(members)
        real(trained, best, average, config, logger)  # the real selection still runs
        return members, score, result

    monkeypatch.setattr(size_search, "select_average", every_candidate)


def test_an_average_is_tested_saved_in_one_file_and_recommends_as_evaluated(
    tiny_data_root, forced_average
):
    result = run_recbole_music("MuSiC", "tiny", config_dict=dict(SEARCH), saved=True)
    rows = result["run"]["size_search"]
    assert all(row["averaged"] for row in rows)
    files = glob.glob("saved/MuSiC-*.pth")
    assert files == [result["run"]["checkpoint"]]  # the other member's file is folded in
    checkpoint = read_checkpoint(files[0])
    assert len(checkpoint[AVERAGE_MEMBERS]) == 1
    chosen = next(row for row in rows if row["chosen"])
    other = next(row for row in rows if not row["chosen"])
    assert checkpoint["config"]["embedding_size"] == chosen["settings"]["embedding_size"]
    member_config = checkpoint[AVERAGE_MEMBERS][0]["config"]
    assert member_config["embedding_size"] == other["settings"]["embedding_size"]

    recommender = ColdStartRecommender.from_checkpoint(files[0])
    assert isinstance(recommender, AveragedRecommender) and len(recommender.members) == 2
    # the average rebuilt from the file scores the test users as the run did
    config = config_from_checkpoint(checkpoint, MuSiC)
    _, _, test_set, _, _ = build_run(config, MuSiC)
    model = ScoreAverage([m.model for m in recommender.members], test_set.target_item_mask)
    rebuilt = ColdStartEvaluator(config).evaluate(model, test_set)
    for key in ("rmse", "mae", "ndcg@20"):
        assert rebuilt[key] == pytest.approx(result["test_result"][key], abs=1e-4)


def test_an_averaged_checkpoint_recommends_the_mean_of_its_members(tiny_data_root, caplog):
    files = []
    for sizes in (
        {"interaction_vector_dim": 4},
        {"interaction_vector_dim": 8, "embedding_size": 16},
    ):
        config = {**FAST, **HISTORY_VECTORS, **sizes, "interaction_size_search": []}
        files.append(run_recbole_music("MuSiC", "tiny", config_dict=config)["run"]["checkpoint"])
    alone = [ColdStartRecommender.from_checkpoint(f) for f in files]
    write_average_checkpoint(files)
    os.remove(files[1])
    averaged = ColdStartRecommender.from_checkpoint(files[0])
    assert isinstance(averaged, AveragedRecommender)
    items, ratings = averaged.history_of(_held_out_user(averaged))
    result = averaged.recommend_from_history(items, ratings, topk=5, seed=1)
    expected = torch.zeros(int(averaged.dataset.target_item_mask.sum()))
    for single in alone:
        _, scores = single.target_scores(single.fold_in_aux_feature(items, ratings), seed=1)
        expected += standardised(scores.view(1, -1), torch.ones(len(scores), dtype=bool))[0] / 2
    assert result.scores == pytest.approx(torch.topk(expected, 5).values.tolist(), abs=1e-5)
    assert result.items == averaged._top(None, expected, 5).items
    assert averaged.fold_in_path().endswith("in each of the 2 models of the average")
    # an unknown item is said once, not once per member
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recbole_music.inference"):
        again = averaged.recommend_from_history(
            [*items, "no-such-item"], [*ratings, 4.0], topk=5, seed=1
        )
    unknown = [r for r in caplog.records if "unknown to the trained model" in r.getMessage()]
    assert len(unknown) == 1 and again.items == result.items
    # the first member alone is what a one-model reader of the file gets
    assert torch.equal(averaged.model.sampling_noise, alone[0].model.sampling_noise)


def _held_out_user(recommender) -> str:
    held = int(torch.nonzero(recommender.model.is_held_out).flatten()[0])
    return recommender.dataset.id2token("user_id", held)
