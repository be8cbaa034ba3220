"""The cold-start CDR baselines on tiny data: each trains and predicts (ratings and implicit),
the mapping never sees held-out users' target data, the base MF is cached and reused, and runs
are deterministic."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_config
from recbole.data.interaction import cat_interactions

import recbole_music  # noqa: F401  (registers the baselines)
from recbole_music.data.dataset import CrossDomainDataset, SplitPart, UserRole
from recbole_music.model.baselines import base_mf
from recbole_music.model.baselines.mapping_base import aux_history
from recbole_music.quick_start import prepare_data, run_recbole_music
from recbole_music.registry import PLUGIN_MODELS

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

MAPPING = ["EMCDR", "SSCDR", "LACDR", "PTUPCDR", "DiffCDR"]
ALL = ["CMF", *MAPPING]
FAST = {"epochs": 2, "base_mf_epochs": 2, "state": "ERROR", "show_progress": False}
PROPERTIES = Path(__file__).resolve().parent.parent / "properties" / "model"


def make_model(name: str, dataset: str = "tiny", **overrides):
    config = make_config(name, dataset, **{**FAST, **overrides})
    data = CrossDomainDataset(config)
    train_data, valid, test = prepare_data(config, data)
    torch.manual_seed(0)
    model = PLUGIN_MODELS[name](config, train_data._dataset)
    trainer_class = getattr(__import__("recbole.trainer", fromlist=["x"]), f"{name}Trainer")
    return config, model, trainer_class(config, model), train_data, valid, test


@pytest.mark.parametrize("dataset", ["tiny", "tiny_implicit"])
@pytest.mark.parametrize("name", ALL)
def test_each_baseline_trains_and_predicts(tiny_data_root, name, dataset):
    result = run_recbole_music(name, dataset, config_dict=dict(FAST), saved=False)
    test = result["test_result"]
    if dataset == "tiny":
        assert {"mae", "rmse", "ratedndcg@20", "ndcg@20"} <= set(test)
        assert 0 < test["rmse"] < 3
    else:  # implicit: ranking metrics only
        assert "rmse" not in test and "ndcg@20" in test
    assert all(math.isfinite(v) for v in test.values())


@pytest.mark.parametrize("name", MAPPING)
def test_mapping_never_sees_held_out_users_target_data(tiny_data_root, name):
    config, model, trainer, train_data, valid, test = make_model(name)
    batches, supervised = [], []
    loss, targets = model.calculate_loss, model.target_vectors_for_training

    def spy_loss(interaction):
        batches.append(interaction)
        return loss(interaction)

    def spy_targets(users):
        supervised.append(users.clone())
        return targets(users)

    model.calculate_loss, model.target_vectors_for_training = spy_loss, spy_targets
    trainer.fit(train_data, valid, saved=False, verbose=False)
    dataset = train_data._dataset
    held_out = (dataset.user_role == UserRole.OVERLAP) & (dataset.user_split != SplitPart.TRAIN)
    target_users = torch.cat(
        [b["user_id"][b["domain"] == dataset.target_domain_id] for b in batches]
    )
    assert len(target_users) and not held_out[target_users].any()
    if name != "LACDR":  # LACDR's target autoencoder also reconstructs side users
        assert (dataset.user_split[target_users] == SplitPart.TRAIN).all()
        assert (dataset.user_role[target_users] == UserRole.OVERLAP).all()
    if name == "PTUPCDR":  # task-oriented: supervised by target ratings, not by u_T
        assert supervised == []
    else:
        supervised = torch.cat(supervised)
        assert len(supervised) and not held_out[supervised].any()
        roles = dataset.user_role[supervised]
        assert ((roles == UserRole.OVERLAP) | (roles == UserRole.SIDE)).all()
        assert (dataset.user_split[supervised] == SplitPart.TRAIN).all()
        if name != "LACDR":
            assert (roles == UserRole.OVERLAP).all()

    # the runtime guards themselves
    with pytest.raises(RuntimeError, match="held-out"):
        loss(test.inter_feat)
    test_users = test.inter_feat["user_id"].unique()
    with pytest.raises(RuntimeError, match="held-out"):
        targets(test_users)


def test_base_mf_refuses_held_out_target_interactions(tiny_data_root):
    config, model, trainer, train_data, valid, test = make_model("EMCDR")
    train = train_data._dataset
    leaky = train.copy(cat_interactions([train.inter_feat, test.inter_feat]))
    with pytest.raises(RuntimeError, match="held-out"):
        base_mf.train_base_vectors(config, leaky)


def test_base_mf_is_trained_once_per_split_and_reused(tiny_data_root, monkeypatch):
    calls = []
    original = base_mf.train_domain_mf

    def counting(domain, *args, **kwargs):
        calls.append(domain)
        return original(domain, *args, **kwargs)

    monkeypatch.setattr(base_mf, "train_domain_mf", counting)
    run_recbole_music("EMCDR", "tiny", config_dict=dict(FAST), saved=False)
    assert calls == ["source", "target"]
    assert len(list(Path("saved/base_mf").glob("tiny-*.pth"))) == 1
    for name in ("PTUPCDR", "DiffCDR"):
        run_recbole_music(name, "tiny", config_dict=dict(FAST), saved=False)
    assert calls == ["source", "target"]  # loaded from the cache, not retrained

    # the cached vectors are the trained ones: a model loads exactly what the cache holds
    config, model, trainer, train_data, *_ = make_model("LACDR")
    trainer.prepare_base(train_data._dataset)
    assert trainer.base_origin == "cache" and calls == ["source", "target"]
    payload = torch.load(next(Path("saved/base_mf").glob("tiny-*.pth")), weights_only=True)
    assert torch.equal(model.src_user, payload["src_user"])
    assert torch.equal(model.tgt_item, payload["tgt_item"])

    # another split or other base-MF settings: another cache entry
    run_recbole_music("EMCDR", "tiny", config_dict={**FAST, "cold_ratio": 0.3}, saved=False)
    run_recbole_music("EMCDR", "tiny", config_dict={**FAST, "base_mf_reg_weight": 0.5})
    assert calls == ["source", "target"] * 3
    assert len(list(Path("saved/base_mf").glob("tiny-*.pth"))) == 3


def test_same_seed_same_numbers(tiny_data_root):
    first = run_recbole_music("DiffCDR", "tiny", config_dict=dict(FAST), saved=False)
    second = run_recbole_music("DiffCDR", "tiny", config_dict=dict(FAST), saved=False)
    assert first["test_result"] == second["test_result"]  # the second reads the cached base
    other = run_recbole_music("DiffCDR", "tiny", config_dict={**FAST, "seed": 7}, saved=False)
    assert other["test_result"] != first["test_result"]


@pytest.mark.parametrize("name", MAPPING)
def test_cold_users_are_scored_with_their_mapped_vector(tiny_data_root, name):
    config, model, trainer, train_data, valid, test = make_model(name)
    trainer.fit(train_data, valid, saved=False, verbose=False)
    model.eval()
    cold = test.inter_feat["user_id"].unique()
    warm = torch.nonzero(model.is_train_overlap).flatten()
    assert torch.allclose(model.user_target_vectors(cold), model.cold_user_vectors()[cold])
    assert not torch.allclose(model.user_target_vectors(cold), model.tgt_user[cold])
    assert torch.equal(model.user_target_vectors(warm), model.tgt_user[warm])
    # one user scored alone gets the same vector as in a batch
    assert torch.equal(model.user_target_vectors(cold[:1])[0], model.user_target_vectors(cold)[0])
    if name != "DiffCDR":  # deterministic maps: the cache equals a fresh forward pass
        with torch.no_grad():
            assert torch.allclose(model.map_users(cold), model.cold_user_vectors()[cold])


def test_ptupcdr_history_holds_the_users_positive_source_items(tiny_data_root):
    config, model, trainer, train_data, *_ = make_model("PTUPCDR")
    dataset = train_data._dataset
    items, mask = aux_history(dataset, 4, 5)
    feat = dataset.inter_feat
    aux = feat["domain"] != dataset.target_domain_id
    for user in torch.nonzero(model.has_source).flatten()[:10].tolist():
        rows = aux & (feat["user_id"] == user)
        rated = dict(zip(feat["item_id"][rows].tolist(), feat["rating"][rows].tolist()))
        kept = items[user][mask[user]].tolist()
        assert 1 <= len(kept) <= 5 and set(kept) <= set(rated)
        if any(r >= 4 for r in rated.values()):
            assert all(rated[i] >= 4 for i in kept)
    assert not mask[torch.nonzero(dataset.user_role == UserRole.SIDE).flatten()].any()


def test_mapping_baselines_share_one_base_mf_configuration():
    shared = yaml.safe_load((PROPERTIES.parent / "base_mf.yaml").read_text())
    assert set(shared) == {"embedding_size", *base_mf.BASE_MF_KEYS, "base_mf_cache"}
    for name in MAPPING:
        assert PLUGIN_MODELS[name].config_layers == ("base_mf.yaml",)
        own = yaml.safe_load((PROPERTIES / f"{name}.yaml").read_text())
        assert not set(own) & set(shared), name  # nothing shadows the shared block
        files = [Path(f).name for f in recbole_music.config_files(name, "tiny")]
        assert files[:3] == ["overall.yaml", "base_mf.yaml", f"{name}.yaml"]


def test_cmf_shares_user_factors_across_domains(tiny_data_root):
    config, model, trainer, train_data, valid, test = make_model("CMF", epochs=5)
    trainer.fit(train_data, valid, saved=False, verbose=False)
    model.eval()
    # a cold user's target scores come from factors their auxiliary ratings trained
    cold = test.inter_feat["user_id"].unique()
    before = model.user_factors.weight[cold].clone()
    assert before.norm(dim=1).min() > 0
    scores = model.predict(test.inter_feat)
    assert scores.std() > 0  # users and items are told apart, not one constant
