"""NeuMF's full-ranking scorer gives RecBole's pairwise scores, and the evaluator's metrics."""

from __future__ import annotations

import pytest
import torch
from conftest import make_config
from recbole.data.interaction import Interaction
from recbole.model.general_recommender import NeuMF as RecBoleNeuMF
from recbole.utils import get_model

from recbole_music.data.dataset import CrossDomainDataset
from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator
from recbole_music.model.neumf import NeuMF
from recbole_music.quick_start import prepare_data

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def make_neumf(**overrides):
    config = make_config("NeuMF", "tiny_implicit", state="INFO", show_progress=False, **overrides)
    train_data, valid, _ = prepare_data(config, CrossDomainDataset(config))
    torch.manual_seed(0)
    model = get_model("NeuMF")(config, train_data._dataset)
    with torch.no_grad():  # RecBole's init (std 0.01) scores every pair alike: spread them
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.5)
    return config, model.eval(), valid


def test_get_model_gives_the_subclass_of_recboles_neumf(tiny_data_root):
    assert get_model("NeuMF") is NeuMF
    assert issubclass(NeuMF, RecBoleNeuMF) and NeuMF is not RecBoleNeuMF


@pytest.mark.parametrize("hidden", [[128, 64], [8, 6, 4]])
def test_full_sort_predict_equals_predict_on_every_pair(tiny_data_root, hidden):
    _, model, _ = make_neumf(mlp_hidden_size=hidden, mf_embedding_size=5, mlp_embedding_size=7)
    users = torch.arange(1, model.n_users)
    items = torch.arange(model.n_items)
    with torch.no_grad():
        full = model.full_sort_predict(Interaction({model.USER_ID: users}))
        pairs = Interaction(
            {
                model.USER_ID: users.repeat_interleave(len(items)),
                model.ITEM_ID: items.repeat(len(users)),
            }
        )
        pairwise = model.predict(pairs)
    assert full.shape == pairwise.shape == (len(users) * len(items),)
    assert pairwise.std() > 0.05  # the scores differ, so the comparison means something
    torch.testing.assert_close(full, pairwise, rtol=0, atol=1e-5)


def test_training_mode_falls_back_to_pairs(tiny_data_root):
    _, model, _ = make_neumf()
    model.train()  # dropout is on: only the pairwise path is RecBole's
    with pytest.raises(NotImplementedError):
        model.full_sort_predict(Interaction({model.USER_ID: torch.arange(1, 3)}))


def test_evaluator_metrics_equal_the_pairwise_path(tiny_data_root, monkeypatch):
    config, model, valid = make_neumf()
    fast = ColdStartEvaluator(config).evaluate(model, valid)

    def no_full_ranking(_self, _interaction):
        raise NotImplementedError

    monkeypatch.setattr(NeuMF, "full_sort_predict", no_full_ranking)
    slow = ColdStartEvaluator(config).evaluate(model, valid)
    assert fast.keys() == slow.keys() and "ndcg@20" in fast
    for name in fast:
        assert fast[name] == pytest.approx(slow[name], abs=1e-6), name


def test_neumf_gets_its_own_patience(tiny_data_root):
    # properties/model/NeuMF.yaml: its validation score can dip for several epochs first
    assert make_config("NeuMF", "tiny_implicit")["stopping_step"] == 20
    assert make_config("BPR", "tiny_implicit")["stopping_step"] == 5
