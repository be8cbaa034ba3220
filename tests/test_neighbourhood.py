"""The neighbourhood transfer baselines (ItemKNNTransfer, UserKNNTransfer, RidgeTransfer,
SVDTransfer) and
RecBole's Pop with exact counts: registered, run on explicit and implicit data, hyper-parameters
chosen on validation users only, popularity fallback, the search skipped without validation users,
and ItemKNNTransfer's scores on a hand-computed example."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml
from conftest import make_config, write_tiny_cross_domain
from recbole.data.interaction import Interaction, cat_interactions
from recbole.utils import ModelType, get_trainer, init_seed

import recbole_music  # noqa: F401  (registers the models)
from recbole_music.data.dataset import CrossDomainDataset, SplitPart
from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator
from recbole_music.model.neighbourhood.item_knn import keep_top_per_column
from recbole_music.quick_start import build_run, prepare_data, resolve_model, run_recbole_music
from recbole_music.registry import PLUGIN_MODELS
from recbole_music.trainer.exact_pop_trainer import ExactPopTrainer
from recbole_music.trainer.hyper_search_trainer import HyperSearchTrainer

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

MODELS = ["ItemKNNTransfer", "UserKNNTransfer", "RidgeTransfer", "SVDTransfer"]
QUIET = {"state": "INFO", "show_progress": False}
PROPERTIES = Path(__file__).resolve().parent.parent / "properties" / "model"
SMALL_GRID = {  # two candidates per model keep the tests fast; the YAML grids are larger
    "ItemKNNTransfer": {"knn_shrink": [0.0, 50.0]},
    "UserKNNTransfer": {"knn_neighbours": [2, 50]},
    "RidgeTransfer": {"ridge_lambda": [1.0, 1000.0]},
    "SVDTransfer": {"svd_rank": [2, 8]},
}


def make_model(name: str, dataset: str = "tiny", **overrides):
    config = make_config(name, dataset, **{**QUIET, **overrides})
    train_data, valid, test = prepare_data(config, CrossDomainDataset(config))
    model = PLUGIN_MODELS[name](config, train_data._dataset)
    trainer = get_trainer(ModelType.TRADITIONAL, name)(config, model)
    return config, model, trainer, train_data, valid, test


def yaml_defaults(name: str) -> dict:
    values = yaml.safe_load((PROPERTIES / f"{name}.yaml").read_text())
    return {k: values[k] for k in PLUGIN_MODELS[name].hyper_names}


@pytest.mark.parametrize("name", MODELS)
def test_registered_with_the_search_trainer_and_yaml_defaults(name):
    assert PLUGIN_MODELS[name].type == ModelType.TRADITIONAL
    assert issubclass(get_trainer(ModelType.TRADITIONAL, name), HyperSearchTrainer)
    values = yaml.safe_load((PROPERTIES / f"{name}.yaml").read_text())
    assert set(PLUGIN_MODELS[name].hyper_names) <= set(values)
    assert set(values["search_grid"]) <= set(PLUGIN_MODELS[name].hyper_names)


@pytest.mark.parametrize("dataset", ["tiny", "tiny_implicit"])
@pytest.mark.parametrize("name", MODELS)
def test_each_model_runs_on_explicit_and_implicit_data(tiny_data_root, name, dataset):
    result = run_recbole_music(
        name, dataset, config_dict={**QUIET, "search_grid": SMALL_GRID[name]}, saved=True
    )
    test = result["test_result"]
    if dataset == "tiny":
        assert {"mae", "rmse", "ratedndcg@20", "ndcg@20", "recall@20"} <= set(test)
        assert 0 < test["mae"] <= test["rmse"] < 2  # ratings on the 1-5 scale, not scores
    else:
        assert "rmse" not in test and "ndcg@20" in test
    assert all(math.isfinite(v) for v in test.values())
    assert result["best_valid_result"]  # the search's best validation result
    # the values the search kept (a grid value or the YAML default, tried first), in the JSON
    chosen = result["run"]["chosen_on_validation"]
    assert set(SMALL_GRID[name]) <= set(chosen)
    assert json.loads(json.dumps(chosen)) == chosen


@pytest.mark.parametrize("name", MODELS)
def test_search_chooses_the_best_candidate_on_validation_users_only(tiny_data_root, name):
    config, model, trainer, train_data, valid, test = make_model(
        name, "tiny_implicit", search_grid=SMALL_GRID[name]
    )
    # held-out users' target rows never reach the fitted matrices
    held_out = torch.nonzero(train_data._dataset.user_split != SplitPart.TRAIN).flatten()
    assert len(held_out) and model.target[held_out.numpy()].nnz == 0
    seen = []
    evaluate = ColdStartEvaluator.evaluate
    ColdStartEvaluator.evaluate = lambda self, m, d: seen.append(d) or evaluate(self, m, d)
    try:
        trainer.fit(train_data, valid, saved=False)
    finally:
        ColdStartEvaluator.evaluate = evaluate
    assert len(seen) == len(model.search_candidates()) == 3  # defaults + 2 grid values
    valid_users = set(valid.inter_feat["user_id"].tolist())
    test_users = set(test.inter_feat["user_id"].tolist())
    for evaluated in seen:
        assert set(evaluated.inter_feat["user_id"].tolist()) == valid_users
    assert not valid_users & test_users
    # the chosen values are the argmax of the validation metric over the candidates
    scores = {}
    for candidate in model.search_candidates():
        model.set_hyper(candidate)
        result = ColdStartEvaluator(config).evaluate(model, valid)
        scores[tuple(candidate.items())] = result["ndcg@20"]
    best = max(scores.values())
    chosen = trainer.best_valid_result["ndcg@20"]
    assert chosen == pytest.approx(best)
    assert len(set(scores.values())) > 1  # the grid values really change the ranking


@pytest.mark.parametrize("name", MODELS)
def test_selecting_on_rmse_keeps_the_ranking_only_pop_weight_at_its_default(
    tiny_data_root, name, caplog
):
    grid = {**SMALL_GRID[name], "pop_weight": [0.0, 0.5]}
    config, model, trainer, train_data, valid, _ = make_model(name, "tiny", search_grid=grid)
    assert trainer.valid_metric == "rmse"
    with caplog.at_level(logging.INFO):
        trainer.fit(train_data, valid, saved=False)
    assert "pop_weight moves no rmse: kept at default" in caplog.text
    assert len(model.search_candidates(True)) == 3
    assert model.hyper["pop_weight"] == yaml_defaults(name)["pop_weight"]
    assert len(model.search_candidates(False)) == 5  # selecting on NDCG, pop_weight is searched


def test_held_out_target_interactions_are_refused(tiny_data_root):
    config = make_config("ItemKNNTransfer", "tiny_implicit", **QUIET)
    data = CrossDomainDataset(config)
    train, valid, test = data.build()
    leaking = train.copy(cat_interactions([train.inter_feat, test.inter_feat]))
    with pytest.raises(RuntimeError, match="held-out users"):
        PLUGIN_MODELS["ItemKNNTransfer"](config, leaking)


@pytest.mark.parametrize("name", MODELS)
def test_without_validation_users_the_defaults_are_used(tiny_data_root, name, caplog):
    with caplog.at_level(logging.INFO):
        result = run_recbole_music(
            name, "tiny_implicit", config_dict={**QUIET, "valid_ratio": 0.0}, saved=True
        )
    assert "search skipped" in caplog.text and "YAML defaults used" in caplog.text
    assert result["best_valid_result"] == {}
    assert "ndcg@20" in result["test_result"]
    config, model, trainer, train_data, valid, _ = make_model(
        name, "tiny_implicit", valid_ratio=0.0
    )
    assert valid is None
    trainer.fit(train_data, valid, saved=False)
    assert model.hyper == yaml_defaults(name)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model=ItemKNNTransfer", "--knn_shrink=-1"], "'knn_shrink' must be >= 0, got -1"),
        (["--model=ItemKNNTransfer", "--search_grid={'knn_alpha':[0.5,2]}"], "in [0, 1], got 2"),
        (["--model=UserKNNTransfer", "--search_grid={'bogus':[1]}"], "names ['bogus'], which"),
        (["--model=UserKNNTransfer", "--knn_neighbours=2.5"], "whole number"),
        (["--model=RidgeTransfer", "--search_grid={'ridge_lambda':[0]}"], "must be > 0, got 0"),
        (["--model=RidgeTransfer", "--ridge_max_users=3"], "exceed ridge_max_users=3"),
        (["--model=SVDTransfer", "--svd_rank=2.5"], "--svd_rank=2.5: expected a whole number"),
        (["--model=SVDTransfer", "--search_grid={'svd_rank':[0]}"], "whole number >= 1, got 0"),
    ],
)
def test_bad_settings_exit_2_with_a_message(tiny_data_root, capsys, argv, message):
    import run_recbole_music

    assert run_recbole_music.main([*argv, "--dataset=tiny_implicit"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def write_with_loners(root: Path, n_loners: int = 10) -> None:
    """Tiny implicit data plus overlapping users whose one auxiliary item nobody else has."""
    folder = write_tiny_cross_domain(root, "loners", explicit=False)
    with open(folder / "loners.inter", "a") as out:
        for n in range(n_loners):
            out.write(f"lonely{n:02d}\tlone{n:02d}\t1\taux\n")
            out.write(f"lonely{n:02d}\tt{n:03d}\t2\ttarget\n")


@pytest.mark.parametrize("name", MODELS)
def test_users_without_co_occurrence_fall_back_to_popularity(tiny_data_root, name, caplog):
    write_with_loners(tiny_data_root)
    config, model, trainer, train_data, valid, test = make_model(name, "loners")
    dataset = train_data._dataset
    test_users = torch.unique(test.inter_feat["user_id"])
    tokens = dataset.id2token("user_id", test_users.numpy())
    loners = test_users[torch.tensor([str(t).startswith("lonely") for t in tokens])]
    assert len(loners) > 0
    scores = model.full_sort_predict(Interaction({"user_id": loners}))
    expected = torch.from_numpy(model.popularity).repeat(len(loners))
    assert torch.allclose(scores, expected)
    assert model.popularity.max() == 1 and (model.popularity > 0).sum() > 1
    with caplog.at_level(logging.INFO):
        trainer.evaluate(test, load_best_model=False)
    assert (
        f"{len(loners)} of {len(test_users)} evaluated users have no auxiliary item "
        f"co-occurring with a target item: ranked by popularity" in caplog.text
    )


HAND_ROWS = [  # (user, item, domain); "c" is the only test user at seed 13 (cold_ratio 0.2)
    ("u1", "a1", "aux"), ("u1", "a2", "aux"), ("u1", "t1", "target"),
    ("u2", "a1", "aux"), ("u2", "t1", "target"), ("u2", "t2", "target"),
    ("u3", "a2", "aux"), ("u3", "a3", "aux"), ("u3", "t2", "target"),
    ("u4", "a3", "aux"), ("u4", "t3", "target"),
    ("s1", "t3", "target"), ("s2", "t1", "target"),
    ("c", "a1", "aux"), ("c", "a3", "aux"), ("c", "t2", "target"),
]  # fmt: skip


def write_hand_example(root: Path) -> None:
    folder = root / "hand"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float\tdomain:token"]
    lines += [f"{u}\t{i}\t{n}\t{d}" for n, (u, i, d) in enumerate(HAND_ROWS)]
    (folder / "hand.inter").write_text("\n".join(lines) + "\n")
    (folder / "hand.yaml").write_text(
        "USER_ID_FIELD: user_id\nITEM_ID_FIELD: item_id\nRATING_FIELD: ~\n"
        "TIME_FIELD: timestamp\nload_col:\n  inter: [user_id, item_id, timestamp, domain]\n"
        "feedback: implicit\nvalid_metric: NDCG@20\n"
    )


def test_item_knn_scores_match_a_hand_computed_example(tiny_data_root):
    # Bridge users u1-u4. Co-occurrence: a1-t1 2, a1-t2 1, a2-t1 1, a2-t2 1, a3-t2 1, a3-t3 1;
    # n(a1) = n(a2) = n(a3) = 2, n(t1) = n(t2) = 2, n(t3) = 1. With shrink 1, alpha 0.5:
    # sim(a1,t1) = 2/(2+1), sim(a1,t2) = 1/3, sim(a3,t2) = 1/3, sim(a3,t3) = 1/(sqrt 2 + 1).
    # c (a1, a3): t1 2/3, t2 2/3, t3 0.41421 -> / max -> 1, 1, 0.62132.
    # Popularity (training target rows, side users included): t1 3, t2 2, t3 2 -> 1, 2/3, 2/3;
    # plus 0.5 x popularity: t1 1.5, t2 1.33333, t3 0.95466.
    write_hand_example(tiny_data_root)
    _, model, _, train_data, _, _ = make_model(
        "ItemKNNTransfer", "hand", cold_ratio=0.2, valid_ratio=0.0, seed=13,
        knn_shrink=1.0, knn_alpha=0.5, pop_weight=0.5, knn_neighbours=0,
    )  # fmt: skip
    data = train_data._dataset
    cold = int(data.token2id("user_id", "c"))
    assert data.user_split[cold] == SplitPart.TEST
    scores = model.full_sort_predict(Interaction({"user_id": torch.tensor([cold])}))
    items = [int(data.token2id("item_id", t)) for t in ("t1", "t2", "t3")]
    assert scores[items].tolist() == pytest.approx([1.5, 4 / 3, 0.62132 + 1 / 3], abs=1e-4)
    aux_items = [int(data.token2id("item_id", a)) for a in ("a1", "a2", "a3")]
    assert scores[aux_items].tolist() == [0.0, 0.0, 0.0]  # auxiliary items: no popularity


def test_keep_top_per_column_keeps_the_k_largest():
    matrix = sp.csr_matrix(np.array([[3.0, 1.0], [2.0, 5.0], [4.0, 0.0]]))
    kept = keep_top_per_column(matrix, 1).toarray()
    assert kept.tolist() == [[0.0, 0.0], [0.0, 5.0], [4.0, 0.0]]
    assert (keep_top_per_column(matrix, 0) != matrix).nnz == 0


def test_pop_counts_every_training_interaction_exactly(tiny_data_root):
    config = make_config("Pop", "tiny_implicit", **QUIET, train_batch_size=100000)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid, _, model, trainer = build_run(config, resolve_model("Pop"))
    assert isinstance(trainer, ExactPopTrainer)
    trainer.fit(train_data, valid, saved=False)
    items = train_data._dataset.inter_feat["item_id"]
    assert torch.equal(model.item_cnt.view(-1), torch.bincount(items, minlength=model.n_items))
    assert model.item_cnt.max() > 1  # one batch holds repeated items: RecBole would count 1


def test_svd_transfer_scores_are_the_low_pass_filter_of_a_dense_svd(tiny_data_root):
    # s = (r D_i^-1/2 V_k) (D_i^1/2 V_k)^T on the target items, V_k the top-k right singular
    # vectors of D_u^-1/2 R D_i^-1/2 (R: the binary training rows of both domains)
    _, model, _, train_data, _, test = make_model(
        "SVDTransfer", "tiny_implicit", svd_rank=3, search_grid={}, pop_weight=0.0
    )
    data = train_data._dataset
    users, items = data.inter_feat["user_id"].numpy(), data.inter_feat["item_id"].numpy()
    matrix = np.zeros((data.user_num, data.item_num))
    matrix[users, items] = 1.0
    user_degree, item_degree = np.maximum(matrix.sum(1), 1), np.maximum(matrix.sum(0), 1)
    _, _, vt = np.linalg.svd(matrix / np.sqrt(user_degree)[:, None] / np.sqrt(item_degree))
    top = vt[:3].T
    cold = torch.unique(test.inter_feat["user_id"]).numpy()
    aux = matrix[cold] * ~data.target_item_mask.numpy()  # their training rows are auxiliary
    expected = (aux / np.sqrt(item_degree)) @ top @ (top * np.sqrt(item_degree)[:, None]).T
    expected[:, ~data.target_item_mask.numpy()] = 0.0
    got = model.neighbourhood_scores(cold)
    assert np.abs(got).max() > 0
    assert np.allclose(got, expected, atol=1e-5 * np.abs(expected).max())
