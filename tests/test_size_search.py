"""MuSiC's size search: every listed size trained in full, the best on validation users kept."""

import json
import logging
from pathlib import Path

import pytest

from recbole_music.inference import ColdStartRecommender
from recbole_music.model.music.model import size_candidates_of
from recbole_music.quick_start import run_recbole_music

FAST = {"epochs": 3, "stage1_epochs": 1, "state": "ERROR", "show_progress": False}
SEARCH = {**FAST, "interaction_vector_dim": 4, "interaction_size_search": [[8, 16]]}


def test_the_search_trains_each_size_and_tests_the_best_on_validation(tiny_data_root, caplog):
    with caplog.at_level(logging.INFO):
        result = run_recbole_music(
            "MuSiC",
            "tiny_implicit",
            config_dict=dict(SEARCH),
            saved=True,
            result_json="out.json",
        )
    rows = result["run"]["size_search"]
    assert [row["settings"] for row in rows] == [
        {
            "embedding_size": 32,
            "interaction_vector_dim": 4,
            "interaction_vector_normalization": "none",
        },
        {
            "embedding_size": 16,
            "interaction_vector_dim": 8,
            "interaction_vector_normalization": "none",
        },
    ]
    chosen = [row for row in rows if row["chosen"]]
    assert len(chosen) == 1
    best = max(row["valid_score"] for row in rows)  # NDCG@20: bigger is better
    assert chosen[0]["valid_score"] == best == result["best_valid_score"]
    if rows[0]["valid_score"] == rows[1]["valid_score"]:
        assert rows[0]["chosen"]  # a tie keeps the run's own sizes
    assert result["run"]["best_epoch"] == chosen[0]["best_epoch"]
    # the recorded settings are the chosen model's, and only its checkpoint is kept
    changed = result["run"]["settings_changed"]
    for key, value in chosen[0]["settings"].items():
        own = {"embedding_size": 32, "interaction_vector_dim": 4}
        own["interaction_vector_normalization"] = "none"
        assert changed.get(key, own[key]) == value
    checkpoints = [str(path) for path in Path("saved").glob("MuSiC-*.pth")]
    assert checkpoints == [result["run"]["checkpoint"]]
    # the checkpoint rebuilds the chosen model (its config holds the chosen sizes)
    model = ColdStartRecommender.from_checkpoint(checkpoints[0]).model
    assert model.sampling_noise.shape[1] == chosen[0]["settings"]["embedding_size"]
    assert json.loads(open("out.json").read())["run"]["size_search"] == rows
    assert "MuSiC size search: 2 sizes" in caplog.text
    assert "MuSiC chosen on validation users" in caplog.text


def test_a_candidate_equals_the_run_given_its_sizes(tiny_data_root):
    searched = run_recbole_music("MuSiC", "tiny_implicit", config_dict=dict(SEARCH), saved=False)
    alone = run_recbole_music(
        "MuSiC",
        "tiny_implicit",
        config_dict={
            **FAST,
            "interaction_vector_dim": 8,
            "embedding_size": 16,
            "interaction_size_search": [],
        },
        saved=False,
    )
    assert "size_search" not in alone["run"]
    assert searched["run"]["size_search"][1]["valid_score"] == alone["best_valid_score"]


def test_no_search_without_validation_users_or_without_interaction_vectors(tiny_data_root, caplog):
    with caplog.at_level(logging.INFO):
        result = run_recbole_music(
            "MuSiC", "tiny_implicit", config_dict={**SEARCH, "valid_ratio": 0}, saved=False
        )
    assert "size_search" not in result["run"]
    assert "MuSiC size search skipped: no validation users" in caplog.text
    # learned ID embeddings (no interaction vectors): nothing to search
    result = run_recbole_music(
        "MuSiC",
        "tiny_implicit",
        config_dict={**SEARCH, "feature_source": "collaborative"},
        saved=False,
    )
    assert "size_search" not in result["run"]


@pytest.mark.parametrize(
    "value",
    [
        [[128]],
        [[0, 32]],
        "big",
        [["a", 3]],
        [[64, 32, "row"]],
        [[64, 32, "none", 1]],
        [[64, 32, "none", "unit", 5]],
        [[64, 32, "none", "unit", True]],
        [[64, 32, "none", "unit", "half"]],
        [[64, 32, "none", "unit", 0.5, 1]],
        "[[1, 2",
    ],
)
def test_a_malformed_size_list_is_refused_with_its_form(value):
    with pytest.raises(ValueError, match=r"interaction_size_search must be a list of"):
        size_candidates_of(value, "none")


def test_size_candidates_read_the_yaml_form():
    # a pair keeps the run's own normalisation; a third element names one, a fourth the
    # history_vector_scale, a fifth the history_dropout (None: the run's own)
    assert size_candidates_of([[128, 64]], "none") == [(128, 64, "none", None, None)]
    assert size_candidates_of([[128, 64]], "symmetric") == [(128, 64, "symmetric", None, None)]
    assert size_candidates_of(
        [[128, 64], [64, 32, "symmetric", "sqrt"], [64, 32, "none", "sqrt", 0.5]], "none"
    ) == [
        (128, 64, "none", None, None),
        (64, 32, "symmetric", "sqrt", None),
        (64, 32, "none", "sqrt", 0.5),
    ]
    assert size_candidates_of([], "none") == [] == size_candidates_of(None, "none")
    # the command line's unquoted form is read as YAML (never evaluated)
    assert size_candidates_of("[[64, 32, symmetric]]", "none") == [
        (64, 32, "symmetric", None, None)
    ]


def _searched_and_alone(search: list, **candidate) -> tuple[list[dict], dict]:
    """(the size search's rows of a tiny run searching ``search``, the result of a run given
    ``candidate``'s settings with no search)."""

    def run(**settings):
        config = {**FAST, "interaction_vector_dim": 4, **settings}
        return run_recbole_music("MuSiC", "tiny_implicit", config_dict=config, saved=False)

    searched = run(interaction_size_search=search)
    return searched["run"]["size_search"], run(**candidate, interaction_size_search=[])


def test_the_search_can_choose_the_matrix_of_the_interaction_vectors(tiny_data_root):
    rows, alone = _searched_and_alone(
        [[4, 32, "symmetric"]], interaction_vector_normalization="symmetric"
    )
    assert [row["settings"]["interaction_vector_normalization"] for row in rows] == [
        "none",
        "symmetric",
    ]
    # the candidate equals the run given its settings, and the choice is the validation argmax
    assert rows[1]["valid_score"] == alone["best_valid_score"]
    chosen = next(row for row in rows if row["chosen"])
    assert chosen["valid_score"] == max(row["valid_score"] for row in rows)


def test_the_search_can_choose_the_history_vector_scale(tiny_data_root):
    """An entry that names a history_vector_scale: every candidate carries one (the run's own
    where not named, so a candidate never inherits the one before it), and the candidate equals
    the run given its settings."""
    rows, alone = _searched_and_alone(
        [[4, 32, "none", "sqrt"], [4, 16]], history_vector_scale="sqrt"
    )
    assert [row["settings"]["history_vector_scale"] for row in rows] == ["mean", "sqrt", "mean"]
    assert rows[1]["valid_score"] == alone["best_valid_score"]


def test_the_search_can_choose_the_history_dropout(tiny_data_root):
    """An entry that names a history_dropout: every candidate carries one (the run's own where
    not named), and the candidate equals the run given its settings."""
    search = [[4, 32, "none", "sqrt", 0.5], [4, 16, "none", "sqrt"]]
    rows, alone = _searched_and_alone(
        search, history_vector_scale="sqrt", history_dropout=0.5, user_vectors="history"
    )
    assert [row["settings"]["history_dropout"] for row in rows] == [0.0, 0.5, 0.0]
    assert rows[1]["valid_score"] == alone["best_valid_score"]


def test_a_dropout_entry_is_skipped_where_history_dropout_cannot_apply(tiny_data_root, caplog):
    """On explicit data history_dropout is refused, so the search skips an entry naming one, says
    so, and is the search without it (the default search's dropout entry on ratings data)."""

    def run(search):
        config = {
            **FAST,
            "interaction_vector_dim": 4,
            "feature_source": "interactions",
            "user_vectors": "history",
            "interaction_size_search": search,
        }
        return run_recbole_music("MuSiC", "tiny", config_dict=config, saved=False)

    with caplog.at_level(logging.INFO):
        with_entry = run([[4, 32, "none", "sqrt", 0.5], [4, 16]])["run"]["size_search"]
    assert "candidate [4, 32, 'none', 'sqrt', 0.5] skipped: history_dropout" in caplog.text
    without = run([[4, 16]])["run"]["size_search"]
    assert [row["settings"] for row in with_entry] == [row["settings"] for row in without]
    assert len(with_entry) == 2 and "history_dropout" not in with_entry[1]["settings"]
    assert [row["valid_score"] for row in with_entry] == [row["valid_score"] for row in without]
