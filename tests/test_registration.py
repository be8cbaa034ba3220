"""Importing recbole_music makes its models, trainers, dataset and metric visible to RecBole."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_config

import recbole_music
from recbole_music.data.dataset import CrossDomainDataset
from recbole_music.trainer.cold_start_trainer import ColdStartEvaluationMixin

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # ray / thop on import
    pytest.mark.filterwarnings("ignore:pkg_resources is deprecated"),  # ray on import
]

RESULT_KEYS = {"mae", "rmse", "ratedndcg@20", "ndcg@20", "recall@20", "hit@20"}


@pytest.mark.parametrize("name", ["TargetMF", "GlobalMean", "ItemMean"])
def test_get_model_finds_our_classes(name):
    from recbole.utils import get_model

    assert get_model(name) is recbole_music.PLUGIN_MODELS[name]
    assert get_model(name).__module__.startswith("recbole_music.model.")


def test_builtin_models_still_resolve():
    from recbole.model.general_recommender.bpr import BPR
    from recbole.utils import get_model

    assert get_model("BPR") is BPR


@pytest.mark.parametrize("name", ["NoSuchModel", "targetmf", "bpr"])
def test_unknown_model_names_raise_value_error(name):
    # RecBole's get_model raises ModuleNotFoundError (lightgbm) for unknown names when xgboost /
    # lightgbm are not installed; the plugin must still say "unknown model"
    from recbole_music.quick_start import resolve_model

    with pytest.raises(ValueError, match=f"unknown model '{name}'") as error:
        resolve_model(name)
    # the message lists the plugin's models, so a typo is easy to fix
    assert all(model in str(error.value) for model in ("GlobalMean", "MuSiC", "TargetMF"))


def test_get_trainer_finds_cold_start_trainers():
    from recbole.trainer import TraditionalTrainer, Trainer
    from recbole.utils import ModelType, get_trainer

    mf = get_trainer(ModelType.GENERAL, "TargetMF")
    assert issubclass(mf, ColdStartEvaluationMixin) and issubclass(mf, Trainer)
    assert not issubclass(mf, TraditionalTrainer)
    floor = get_trainer(ModelType.TRADITIONAL, "GlobalMean")
    assert issubclass(floor, ColdStartEvaluationMixin) and issubclass(floor, TraditionalTrainer)
    # RecBole's own trainers are untouched
    assert get_trainer(ModelType.GENERAL, "BPR") is Trainer


def test_metric_is_registered_and_idempotent():
    from recbole.evaluator import register

    from recbole_music.evaluation.metrics import RatedNDCG, register_metrics

    assert register.metrics_dict["ratedndcg"] is RatedNDCG
    assert register.metric_types["ratedndcg"] == RatedNDCG.metric_type
    assert register.metric_information["ratedndcg"] == ["rec.score", "data.label", "data.user_id"]
    before = list(register.smaller_metrics)
    register_metrics()
    recbole_music.registry.register_all()
    assert register.smaller_metrics == before
    assert "ratedndcg" not in register.smaller_metrics  # bigger is better


def test_config_files_order(tiny_data_root):
    files = [Path(f) for f in recbole_music.config_files("TargetMF", "tiny")]
    assert [f.name for f in files] == ["overall.yaml", "TargetMF.yaml", "tiny.yaml"]
    assert files[-1].parent.name == "tiny"
    assert [
        Path(f).name for f in recbole_music.config_files("BPR", "tiny", user_files=["x.yaml"])
    ] == [
        "overall.yaml",
        "tiny.yaml",
        "x.yaml",
    ]


def test_config_files_layers_sequential_yaml_for_sequential_models(tiny_data_root):
    # the public function gives the layers the command uses: sequential.yaml after the
    # dataset's YAML, before the user's files
    for model in ("LLMEMF", "SASRec"):
        names = [
            Path(f).name for f in recbole_music.config_files(model, "tiny", user_files=["x.yaml"])
        ]
        assert names[-3:] == ["tiny.yaml", "sequential.yaml", "x.yaml"], model
    assert "sequential.yaml" not in [
        Path(f).name for f in recbole_music.config_files("BPR", "tiny")
    ]


def test_create_dataset_builds_a_cross_domain_dataset(tiny_data_root):
    from recbole.data import create_dataset

    data = create_dataset(make_config("TargetMF"))
    assert type(data) is CrossDomainDataset
    assert data.is_explicit
    assert int(data.target_item_mask.sum()) == 25


def test_real_run_recbole_end_to_end_matches_our_quick_start(tiny_data_root):
    from recbole.quick_start import run_recbole

    from recbole_music.quick_start import run_recbole_music

    config_dict = {"epochs": 2}
    result = run_recbole(
        model="TargetMF",
        dataset="tiny",
        config_file_list=recbole_music.config_files("TargetMF", "tiny"),
        config_dict=config_dict,
        saved=True,
    )
    assert set(result["test_result"]) == RESULT_KEYS
    assert set(result["best_valid_result"]) == RESULT_KEYS
    assert all(0.0 <= result["test_result"][k] <= 1.0 for k in RESULT_KEYS - {"mae", "rmse"})
    assert 0.0 < result["test_result"]["mae"] <= result["test_result"]["rmse"] < 4.0
    # the best checkpoint was written and reloaded (safe format, weights_only=True)
    assert list(Path("saved").glob("TargetMF-*.pth"))
    # RecBole's pipeline (dataloaders) and ours (split datasets) give the same numbers
    ours = run_recbole_music("TargetMF", "tiny", config_dict=config_dict)
    assert dict(result["test_result"]) == ours["test_result"]
    assert dict(result["best_valid_result"]) == ours["best_valid_result"]
