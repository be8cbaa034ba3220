"""Cold-start inference for a new user from a MuSiC checkpoint (function and command)."""

from __future__ import annotations

import glob

import pytest
import torch

from recbole_music.inference import ColdStartRecommender
from recbole_music.quick_start import run_recbole_music
from recbole_music.recommend import main as recommend_main

FAST = {"epochs": 3, "stage1_epochs": 1, "state": "ERROR"}


@pytest.fixture
def checkpoint(tiny_data_root):
    run_recbole_music("MuSiC", "tiny", config_dict=dict(FAST), saved=True)
    return glob.glob("saved/MuSiC-*.pth")[0]


def test_recommends_target_items_from_an_aux_history(checkpoint):
    recommender = ColdStartRecommender.from_checkpoint(checkpoint)
    dataset = recommender.dataset
    test_user = next(u for u in dataset.field2id_token["user_id"][1:] if u.startswith("o"))
    items, ratings = recommender.history_of(test_user)
    assert items and all(i.startswith("a") for i in items)  # auxiliary items only
    first = recommender.recommend_from_history(items, ratings, topk=5, seed=1)
    again = recommender.recommend_from_history(items, ratings, topk=5, seed=1)
    assert len(first.items) == 5 and all(i.startswith("t") for i in first.items)
    assert first.items == again.items and torch.equal(first.target_feature, again.target_feature)
    assert first.scores == sorted(first.scores, reverse=True)
    # a different history gives a different user feature
    other = recommender.recommend_from_history(items, [6 - r for r in ratings], topk=5, seed=1)
    assert not torch.allclose(other.target_feature, first.target_feature)


def test_bad_histories_are_refused(checkpoint):
    recommender = ColdStartRecommender.from_checkpoint(checkpoint)
    with pytest.raises(ValueError, match="auxiliary-domain items only"):
        recommender.fold_in_aux_feature(["t000"], [5.0])
    with pytest.raises(ValueError, match="ratings"):
        recommender.fold_in_aux_feature(["a000"])
    with pytest.raises(ValueError, match="none of the history"):
        recommender.fold_in_aux_feature(["nope"], [3.0])


def test_command_prints_a_ranked_list(checkpoint, tmp_path, capsys):
    history = tmp_path / "history.tsv"
    history.write_text("a001\t5\na002\t1\na003\t4\n")
    assert (
        recommend_main(["--checkpoint", checkpoint, "--history", str(history), "--topk", "3"]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1] == "rank\titem_id\tscore" and len(lines) == 5
    assert lines[2].startswith("1\tt")
    history.write_text("a001\tfive\n")
    assert recommend_main(["--checkpoint", checkpoint, "--history", str(history)]) == 2
    assert "history.tsv:1: field 'rating'" in capsys.readouterr().err


def test_new_user_generation_is_the_models_own(checkpoint):
    """recommend() generates u_T by the model's own path (with its residual and scale): for a
    held-out user with the model's starting noise it reproduces the evaluated feature."""
    recommender = ColdStartRecommender.from_checkpoint(checkpoint)
    model = recommender.model
    model.eval()
    held = int(torch.nonzero(model.is_held_out).flatten()[0])
    u_a = model.features.users_aux(torch.tensor([held]))[0].detach()
    generator = torch.Generator().manual_seed(7)  # recommend(seed=7) draws x_T, then each step
    x_T = torch.randn(1, u_a.shape[0], generator=generator)
    expected = model.generate(u_a.view(1, -1), x_T=x_T.clone(), generator=generator)
    assert torch.allclose(recommender.recommend(u_a, topk=3, seed=7).target_feature, expected[0])
    if model.condition_residual:
        # the denoiser's own output alone would give another feature
        plain = model.feature_scale * model.diffusion.sample(
            model.denoiser, cond=u_a.view(1, -1), x_T=x_T
        )
        assert not torch.allclose(plain[0], expected[0])
