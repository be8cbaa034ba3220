"""bench/rating_clip.py: the clipped errors on a tiny split, with a model whose predictions run
past both ends of the training scale."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import make_config

from recbole_music.data.dataset import CrossDomainDataset
from recbole_music.quick_start import prepare_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import rating_clip  # noqa: E402


class Overshooting:
    """Predicts each held-out rating as the rating plus or minus ``by``, alternately."""

    def __init__(self, by: float):
        self.by = by

    def predict(self, interaction):
        ratings = interaction["rating"].float()
        signs = torch.ones_like(ratings)
        signs[1::2] = -1
        return ratings + signs * self.by


def test_clipping_pulls_predictions_back_to_the_trained_scale(tiny_data_root):
    config = make_config("TargetMF", "tiny", state="ERROR", show_progress=False)
    train_data, _, test = prepare_data(config, CrossDomainDataset(config))
    train = train_data._dataset
    feat = train.inter_feat
    trained = feat["rating"][feat[train.domain_field] == train.target_domain_id]
    low, high = trained.min().item(), trained.max().item()
    assert low < high and len(test) > 1

    stats = rating_clip.clipping_effect(Overshooting(10.0), train, test)
    assert stats["MAE"] == pytest.approx(10.0) and stats["RMSE"] == pytest.approx(10.0)
    assert stats["beyond the scale"] == 1.0
    ratings = test.inter_feat["rating"].float()
    signs = torch.ones_like(ratings)
    signs[1::2] = -1
    expected = torch.where(signs > 0, high - ratings, low - ratings).abs()  # to its bound
    assert stats["MAE clipped"] == pytest.approx(expected.mean().item(), abs=1e-6)

    within = rating_clip.clipping_effect(Overshooting(0.0), train, test)
    assert within["MAE clipped"] == within["MAE"] == 0.0
    assert within["beyond the scale"] == 0.0
