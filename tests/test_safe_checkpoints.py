"""Checkpoints cannot run code: a malicious .pth is refused on every loading path, and nothing in
it runs (recbole_music.checkpoint)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest
import torch
from conftest import make_config

import recbole_music  # noqa: F401  (registers the plugin, installs safe checkpoints)
from recbole_music.checkpoint import (
    FORMAT,
    CheckpointError,
    config_from_checkpoint,
    read_checkpoint,
)
from recbole_music.inference import ColdStartRecommender
from recbole_music.quick_start import run_recbole_music
from recbole_music.recommend import main as recommend_main

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

# one size: the config round trip below compares the checkpoint's settings with these (a size
# search would leave the chosen sizes there, as tests/test_size_search.py checks)
FAST = {"epochs": 2, "stage1_epochs": 1, "state": "ERROR", "interaction_size_search": []}


class WritesMarker:
    """Unpickling it opens (creates) the marker file: proof that the file's code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_malicious_checkpoints(folder: Path, marker: Path) -> list[str]:
    """RecBole's layout with a booby-trapped config, with and without our format marker."""
    files = []
    for name, extra in (("plain", {}), ("marked", {"format": FORMAT})):
        path = folder / f"evil-{name}.pth"
        torch.save(
            {
                **extra,
                "config": WritesMarker(marker),
                "epoch": 0,
                "cur_step": 0,
                "best_valid_score": 0.0,
                "state_dict": {},
                "other_parameter": {},
                "optimizer": {},
            },
            path,
        )
        files.append(str(path))
    return files


@pytest.fixture
def evil(tiny_data_root, tmp_path):
    marker = tmp_path / "PWNED"
    files = write_malicious_checkpoints(tmp_path, marker)
    return files, marker


@pytest.fixture
def music_checkpoint(tiny_data_root):
    run_recbole_music("MuSiC", "tiny", config_dict=dict(FAST), saved=True)
    return glob.glob("saved/MuSiC-*.pth")[0]


def test_the_marker_works_when_loaded_the_old_way(evil):
    """Guards the test itself: the files do run code when unpickled without weights_only."""
    files, marker = evil
    torch.load(files[0], weights_only=False)
    assert marker.exists()


def test_recommend_command_refuses_a_malicious_checkpoint(evil, capsys):
    files, marker = evil
    for path in files:
        assert recommend_main(["--checkpoint", path, "--user", "o001"]) == 2
        err = capsys.readouterr().err
        assert f"checkpoint {path} refused" in err and "Traceback" not in err
    assert not marker.exists()


def test_inference_api_refuses_a_malicious_checkpoint(evil):
    files, marker = evil
    for path in files:
        with pytest.raises(CheckpointError, match="refused"):
            ColdStartRecommender.from_checkpoint(path)
    assert not marker.exists()


def test_trainer_reload_refuses_a_malicious_checkpoint(evil):
    from recbole_music.data.dataset import CrossDomainDataset
    from recbole_music.model.target_mf import TargetMF
    from recbole_music.trainer.cold_start_trainer import CrossDomainTrainer

    files, marker = evil
    config = make_config("TargetMF", epochs=1, state="ERROR")
    train, _, test = CrossDomainDataset(config).build()
    trainer = CrossDomainTrainer(config, TargetMF(config, train))
    for path in files:
        with pytest.raises(CheckpointError, match="refused"):
            trainer.evaluate(test, load_best_model=True, model_file=path)
        with pytest.raises(CheckpointError, match="refused"):
            trainer.resume_checkpoint(path)
    assert not marker.exists()


def test_recbole_trainer_reload_runs_nothing(evil):
    """RecBole's own Trainer (plain run_recbole's) loads with torch's weights_only default."""
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import BPR
    from recbole.trainer import Trainer

    files, marker = evil
    config = make_config("BPR", "tiny_implicit", epochs=1, state="ERROR")
    _, _, test_data = data_preparation(config, create_dataset(config))
    trainer = Trainer(config, BPR(config, test_data._dataset))
    for path in files:
        with pytest.raises(Exception, match="weights_only"):
            Trainer.evaluate(trainer, test_data, load_best_model=True, model_file=path)
    assert not marker.exists()


def test_missing_folder_and_foreign_checkpoints_are_clear_errors(tiny_data_root, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="is a folder"):
        read_checkpoint(tmp_path)
    foreign = tmp_path / "weights.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)  # loads, but is not ours
    with pytest.raises(CheckpointError, match="no 'recbole-music-checkpoint/1' marker"):
        read_checkpoint(foreign)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(text)


def test_a_checkpoint_holds_plain_data_and_rebuilds_its_config(music_checkpoint):
    checkpoint = torch.load(music_checkpoint, weights_only=True)  # no pickled objects at all
    assert checkpoint["format"] == FORMAT
    assert isinstance(checkpoint["config"], dict) and checkpoint["config"]["model"] == "MuSiC"

    original = make_config("MuSiC", **FAST)
    rebuilt = config_from_checkpoint(checkpoint, recbole_music.PLUGIN_MODELS["MuSiC"])
    differing = {
        key
        for key, value in original.final_config_dict.items()
        if rebuilt.final_config_dict.get(key) != value
    }
    assert differing <= {"device", "use_gpu"}, differing


def test_the_inference_api_loads_a_safe_checkpoint_and_reproduces_its_weights(music_checkpoint):
    recommender = ColdStartRecommender.from_checkpoint(music_checkpoint)
    saved = torch.load(music_checkpoint, weights_only=True)["state_dict"]
    for name, value in recommender.model.state_dict().items():
        assert torch.equal(saved[name], value), name


def test_plain_run_recbole_reloads_its_best_epoch_in_the_safe_format(tiny_data_root):
    """RecBole's own quick start, a built-in model, no plugin config: the best-epoch reload
    (torch's weights_only default) works because RecBole's Trainer now saves plain data."""
    from recbole.quick_start import run_recbole

    result = run_recbole(
        model="BPR",
        dataset="tiny_implicit",
        config_dict={"epochs": 2, "state": "ERROR", "show_progress": False},
        saved=True,
    )
    assert set(result["test_result"])  # evaluated after reloading the best checkpoint
    (path,) = glob.glob(os.path.join("saved", "BPR-*.pth"))
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["format"] == FORMAT and checkpoint["config"]["model"] == "BPR"
    assert not [f for f in os.listdir("saved") if ".partial-" in f]


def test_array_and_sparse_model_parameters_survive_the_safe_format(tmp_path):
    """ItemKNN-style models keep scipy matrices and arrays as other parameters: stored as
    tensors, rebuilt on load (nothing pickled)."""
    import numpy as np
    import scipy.sparse as sp

    from recbole_music.checkpoint import _plain_parameter, write_checkpoint

    similarity = sp.random(5, 4, density=0.5, format="csr", random_state=0)
    means = np.arange(3, dtype=np.float32)
    state = {
        "format": FORMAT,
        "config": {"model": "ItemKNN"},
        "other_parameter": {
            name: _plain_parameter(value)
            for name, value in {
                "w": similarity,
                "m": means,
                "n": np.float64(2.5),
                "hyper": {"knn_shrink": np.float64(50.0), "grid": [1, 2]},  # a search's choice
            }.items()
        },
    }
    path = tmp_path / "knn.pth"
    write_checkpoint(state, path)
    other = read_checkpoint(path)["other_parameter"]
    assert (other["w"] != similarity).nnz == 0 and other["w"].shape == (5, 4)
    assert np.array_equal(other["m"], means) and other["n"] == 2.5
    assert other["hyper"] == {"knn_shrink": 50.0, "grid": [1, 2]}
    with pytest.raises(CheckpointError, match="cannot store a model parameter of type object"):
        _plain_parameter(object())


def test_a_checkpoint_without_a_newer_setting_loads_with_its_default(music_checkpoint, tmp_path):
    """A checkpoint written before a setting existed rebuilds its config with that setting's
    default (the behaviour from before it), and its weights load."""
    checkpoint = torch.load(music_checkpoint, weights_only=True)
    assert checkpoint["config"].pop("history_vector_scale") == "mean"
    older = tmp_path / "older.pth"
    torch.save(checkpoint, older)
    rebuilt = config_from_checkpoint(checkpoint, recbole_music.PLUGIN_MODELS["MuSiC"])
    assert rebuilt["history_vector_scale"] == "mean"
    recommender = ColdStartRecommender.from_checkpoint(older)
    for name, value in recommender.model.state_dict().items():
        assert torch.equal(checkpoint["state_dict"][name], value), name


def test_a_checkpoint_from_before_rating_clip_predicts_its_ratings_unclipped(music_checkpoint):
    """rating_clip's default (True) changes what a model predicts: a checkpoint written before
    the setting existed keeps its own behaviour (False); one that holds it keeps its value."""
    checkpoint = torch.load(music_checkpoint, weights_only=True)
    model_class = recbole_music.PLUGIN_MODELS["MuSiC"]
    assert checkpoint["config"]["rating_clip"] is True
    assert config_from_checkpoint(checkpoint, model_class)["rating_clip"] is True
    checkpoint["config"].pop("rating_clip")
    assert config_from_checkpoint(checkpoint, model_class)["rating_clip"] is False
