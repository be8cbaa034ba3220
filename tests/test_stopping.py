"""How a fit ended, as each run's result records it: early stopping or the epoch limit."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import make_config

import recbole_music  # noqa: F401  (registers the plugin)
from recbole_music.data.dataset import CrossDomainDataset
from recbole_music.quick_start import prepare_data
from recbole_music.registry import PLUGIN_MODELS
from recbole_music.trainer.cold_start_trainer import CrossDomainTrainer

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _fit(**settings):
    config = make_config("TargetMF", seed=1, state="ERROR", show_progress=False, **settings)
    train_data, valid, _ = prepare_data(config, CrossDomainDataset(config))
    trainer = CrossDomainTrainer(config, PLUGIN_MODELS["TargetMF"](config, train_data._dataset))
    return trainer, train_data, valid


def test_a_fit_that_runs_every_epoch_ended_at_the_epoch_limit(tiny_data_root):
    trainer, train_data, valid = _fit(epochs=2, stopping_step=5)
    assert trainer.stopped_by() is None  # nothing trained yet
    trainer.fit(train_data, valid, saved=False, verbose=False)
    assert trainer.epochs_trained == 2 and trainer.stopped_by() == "epoch limit"


def test_a_fit_whose_validation_stops_improving_ended_by_early_stopping(tiny_data_root):
    trainer, train_data, valid = _fit(epochs=50, stopping_step=1)
    worse = itertools.count(1.0, 0.1)  # RMSE: smaller is better, so every epoch is worse

    def valid_epoch(valid_data, show_progress=False):
        score = next(worse)
        return score, {"rmse": score}

    trainer._valid_epoch = valid_epoch
    torch.manual_seed(0)
    trainer.fit(train_data, valid, saved=False, verbose=False)
    # best at epoch 0, then two evaluations without improvement (> stopping_step = 1): stop
    assert trainer.epochs_trained == 3 and trainer.stopped_by() == "early stopping"
