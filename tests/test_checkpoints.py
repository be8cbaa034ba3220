"""Each run owns its checkpoint file, and a save is atomic (cold_start_trainer)."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import make_config

import recbole_music  # noqa: F401  (registers the plugin)
from recbole_music.data.dataset import CrossDomainDataset
from recbole_music.quick_start import prepare_data
from recbole_music.registry import PLUGIN_MODELS
from recbole_music.trainer.cold_start_trainer import CrossDomainTrainer, reserve_file

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def make_trainer(seed: int):
    config = make_config("TargetMF", epochs=1, seed=seed, state="ERROR", show_progress=False)
    train_data, valid, _ = prepare_data(config, CrossDomainDataset(config))
    torch.manual_seed(seed)
    model = PLUGIN_MODELS["TargetMF"](config, train_data._dataset)
    return CrossDomainTrainer(config, model), train_data, valid


def test_runs_started_in_the_same_second_keep_their_own_checkpoints(tiny_data_root):
    first, first_train, first_valid = make_trainer(seed=1)
    second, second_train, second_valid = make_trainer(seed=2)
    # RecBole names the file after the model and the local time to the second: force the clash
    second.saved_model_file = first.saved_model_file
    first.fit(first_train, first_valid, saved=True, verbose=False)
    second.fit(second_train, second_valid, saved=True, verbose=False)

    assert second.saved_model_file != first.saved_model_file
    assert second.saved_model_file.endswith("-2.pth")
    for trainer in (first, second):  # one epoch: the best checkpoint holds the final weights
        saved = torch.load(trainer.saved_model_file, weights_only=True)["state_dict"]
        for name, value in trainer.model.state_dict().items():
            assert torch.equal(saved[name], value), name
    assert not [f for f in os.listdir("saved") if ".partial-" in f]


def test_a_failed_save_keeps_the_previous_checkpoint_and_leaves_no_debris(
    tiny_data_root, monkeypatch
):
    import recbole.trainer.trainer as recbole_trainer

    trainer, _, _ = make_trainer(seed=1)
    trainer._save_checkpoint(0, verbose=False)
    good = open(trainer.saved_model_file, "rb").read()
    real_save = torch.save

    def save_then_crash(obj, path, **kwargs):
        real_save(obj, path, **kwargs)
        with open(path, "r+b") as handle:  # half-written
            handle.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(recbole_trainer.torch, "save", save_then_crash)
    with pytest.raises(OSError, match="disk full"):
        trainer._save_checkpoint(1, verbose=False)
    assert open(trainer.saved_model_file, "rb").read() == good
    assert os.listdir("saved") == [os.path.basename(trainer.saved_model_file)]

    # a run whose very first save fails leaves no empty reserved name behind
    fresh, _, _ = make_trainer(seed=2)
    fresh.saved_model_file = os.path.join("saved", "Fresh.pth")
    with pytest.raises(OSError, match="disk full"):
        fresh._save_checkpoint(0, verbose=False)
    assert not os.path.exists(os.path.join("saved", "Fresh.pth"))


def test_reserve_file_takes_the_first_free_name(tmp_path):
    path = str(tmp_path / "MuSiC-Nov-30-2026_14-00-00.pth")
    assert reserve_file(path) == path
    assert reserve_file(path) == path[: -len(".pth")] + "-2.pth"
    assert reserve_file(path) == path[: -len(".pth")] + "-3.pth"
    assert os.path.getsize(path) == 0  # claimed, not yet written
