"""MuSiC's feature sources: user vectors from history, the bias coordinate, table resolution."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import pytest
import torch
from conftest import make_config
from recbole.data.interaction import cat_interactions

import recbole_music  # noqa: F401
from dataset_prep.vector_table import save_vectors
from recbole_music.data.dataset import CrossDomainDataset, SplitPart, UserRole
from recbole_music.model.music import MuSiC
from recbole_music.model.music.content_mapping import (
    items_with_training_interactions,
    map_content_to_interactions,
)
from recbole_music.model.music.features import (
    FROZEN_TABLES,
    resolve_feature_source,
    resolve_user_vectors,
)
from recbole_music.model.music.interaction_vectors import (
    interaction_item_vectors,
    interaction_vector_tables,
)
from recbole_music.model.music.user_history_vectors import (
    dropped_history_vectors,
    history_rows,
    history_vector_dim,
    user_history_vectors,
)
from recbole_music.quick_start import prepare_data

FAST = {"epochs": 1, "stage1_epochs": 1, "state": "ERROR", "show_progress": False}
ITEM_DIM = 6


def _write_item_vectors(root, name="tiny", with_users=False):
    """Random item vectors for every item of ``root/name`` (and user tables when asked)."""
    folder = root / name
    rows = [line.split("\t") for line in (folder / f"{name}.inter").read_text().splitlines()[1:]]
    rng = np.random.default_rng(0)
    items = sorted({row[1] for row in rows})
    save_vectors(folder / "features", "items", items, rng.normal(size=(len(items), ITEM_DIM)))
    if with_users:
        users = sorted({row[0] for row in rows})
        for table in ("users_aux", "users_target"):
            save_vectors(folder / "features", table, users, rng.normal(size=(len(users), 5)))


def _train_split(dataset_name="tiny", **overrides):
    config = make_config("MuSiC", dataset_name, **{**FAST, **overrides})
    train_data, valid, test = prepare_data(config, CrossDomainDataset(config))
    return config, train_data._dataset, test


def test_history_vectors_match_a_hand_computation_and_never_read_test_rows(tiny_data_root):
    _write_item_vectors(tiny_data_root)
    _, train, test = _train_split()
    items = torch.randn(train.item_num, ITEM_DIM, dtype=torch.float64)
    target = user_history_vectors(train, items, target=True)
    assert target.shape == (train.user_num, history_vector_dim(ITEM_DIM, explicit=True))

    # held-out users have no target history in training: their target vector is all zeros
    held_out = torch.unique(test.inter_feat["user_id"])
    assert len(held_out) and (target[held_out] == 0).all()

    # one training overlap user, by hand: mean vector, rating-weighted mean, generosity
    feat = train.inter_feat
    is_target = feat["domain"] == train.target_domain_id
    user = int(feat["user_id"][is_target][0])
    rows = is_target & (feat["user_id"] == user)
    vecs, ratings = items[feat["item_id"][rows]], feat["rating"][rows].double()
    expected = torch.cat(
        [
            vecs.mean(0),
            ((ratings - ratings.mean())[:, None] * vecs).mean(0),
            (ratings.mean() - feat["rating"][is_target].double().mean()).view(1),
        ]
    )
    assert torch.allclose(target[user], expected)

    # the auxiliary vector of a held-out user is built from their auxiliary history
    aux = user_history_vectors(train, items, target=False)
    assert (aux[held_out].abs().sum(1) > 0).all()


@pytest.mark.parametrize("dataset_name", ["tiny", "tiny_implicit"])
def test_history_vectors_gathered_in_chunks_equal_one_gather(
    tiny_data_root, monkeypatch, dataset_name
):
    import recbole_music.model.music.user_history_vectors as history

    _, train, _ = _train_split(dataset_name)
    vectors = torch.randn(train.item_num, ITEM_DIM, generator=torch.Generator().manual_seed(0))
    whole = [user_history_vectors(train, vectors, target) for target in (False, True)]
    monkeypatch.setattr(history, "ROW_CHUNK", 3)
    chunked = [user_history_vectors(train, vectors, target) for target in (False, True)]
    assert all(torch.equal(a, b) for a, b in zip(whole, chunked))


def test_implicit_history_vector_is_the_mean_item_vector(tiny_data_root):
    _write_item_vectors(tiny_data_root, "tiny_implicit")
    _, train, _ = _train_split("tiny_implicit")
    items = torch.randn(train.item_num, ITEM_DIM)
    vectors = user_history_vectors(train, items, target=False)
    assert vectors.shape == (train.user_num, ITEM_DIM)
    feat = train.inter_feat
    user = int(feat["user_id"][feat["domain"] != train.target_domain_id][0])
    rows = (feat["domain"] != train.target_domain_id) & (feat["user_id"] == user)
    assert torch.allclose(vectors[user], items[feat["item_id"][rows]].mean(0), atol=1e-6)


@pytest.mark.parametrize("dataset_name", ["tiny", "tiny_implicit"])
def test_unit_history_vectors_keep_the_mean_direction_at_norm_one(tiny_data_root, dataset_name):
    _, train, _ = _train_split(dataset_name)
    items = torch.randn(train.item_num, ITEM_DIM, dtype=torch.float64)
    for target in (False, True):
        mean = user_history_vectors(train, items, target)
        unit = user_history_vectors(train, items, target, scale="unit")
        has_history = mean[:, :ITEM_DIM].norm(dim=1) > 0
        assert has_history.any() and (~has_history).any()  # held-out users: no target history
        head = unit[:, :ITEM_DIM]
        assert torch.allclose(head[has_history].norm(dim=1), torch.ones(1, dtype=torch.float64))
        assert (head[~has_history] == 0).all()
        cosine = torch.nn.functional.cosine_similarity(head, mean[:, :ITEM_DIM], dim=1)
        assert torch.allclose(cosine[has_history], torch.ones(1, dtype=torch.float64))
        # explicit data: the rating-weighted part and the generosity keep their scale
        assert torch.equal(unit[:, ITEM_DIM:], mean[:, ITEM_DIM:])
        # sqrt: the mean times the square root of the user's item count in that domain
        feat = train.inter_feat
        rows = (feat["domain"] == train.target_domain_id) == target
        counts = torch.bincount(feat["user_id"][rows], minlength=train.user_num).double()
        root = user_history_vectors(train, items, target, scale="sqrt")
        expected = mean[:, :ITEM_DIM] * counts.sqrt()[:, None]
        assert torch.allclose(root[:, :ITEM_DIM], expected)
        assert not torch.allclose(root[:, :ITEM_DIM], mean[:, :ITEM_DIM])
    with pytest.raises(ValueError, match="history_vector_scale"):
        user_history_vectors(train, items, False, scale="sum")


@pytest.mark.parametrize("scale", ["unit", "sqrt"])
def test_a_held_out_user_folds_in_to_their_scaled_history_u_a(tiny_data_root, scale):
    _write_item_vectors(tiny_data_root)
    config, train, test = _train_split(
        feature_source="multimodal", user_vectors="history", history_vector_scale=scale
    )
    model = MuSiC(config, train).eval()
    _assert_a_test_user_folds_in_to_their_training_u_a(model, train, test)
    # the scaled table is what the model reads
    aux = user_history_vectors(train, model.features.history_items, False, scale=scale)
    assert torch.allclose(model.features.user_aux_vectors, aux.float())


@pytest.mark.parametrize("scale", ["mean", "sqrt"])
def test_dropped_histories_average_a_non_empty_part_of_the_users_own_items(tiny_data_root, scale):
    _, train, _ = _train_split("tiny_implicit")
    items = torch.randn(train.item_num, ITEM_DIM, dtype=torch.float64)
    indptr, aux_items = history_rows(train, target=False)
    users = torch.arange(train.user_num)
    full = user_history_vectors(train, items, target=False, scale=scale)
    # nothing dropped: the table itself
    kept_all = dropped_history_vectors(users, indptr, aux_items, items, 0.0, scale)
    assert torch.allclose(kept_all, full)
    # one-hot item vectors show which items each row averaged
    onehot = torch.eye(train.item_num, dtype=torch.float64)
    torch.manual_seed(0)
    fractions = []
    for _ in range(20):
        rows = dropped_history_vectors(users, indptr, aux_items, onehot, 0.5, "mean")
        for user in range(train.user_num):
            own = set(aux_items[indptr[user] : indptr[user + 1]].tolist())
            used = set(torch.nonzero(rows[user]).flatten().tolist())
            if not own:
                assert not used  # no auxiliary history: zeros, as in the table
                continue
            assert used and used <= own  # at least one item, and only the user's own
            assert torch.allclose(rows[user][list(used)], torch.tensor(1 / len(used)).double())
            fractions.append(len(used) / len(own))
    assert 0.4 < np.mean(fractions) < 0.8  # about half left out (at least one kept lifts it)


def test_history_dropout_reads_dropped_histories_in_training_only(tiny_data_root):
    config, train, _ = _train_split("tiny_implicit", user_vectors="history", history_dropout=0.5)
    model = MuSiC(config, train)
    users = torch.arange(1, train.user_num)
    model.eval()
    with torch.no_grad():
        evaluated = model.features.users_aux(users)
        assert torch.equal(evaluated, model.features.users_aux(users))
    model.train()
    model.features.user_mlp.eval()  # the MLP's own dropout off: only the histories vary
    torch.manual_seed(0)
    first, second = model.features.users_aux(users), model.features.users_aux(users)
    assert not torch.allclose(first, second)
    assert not torch.allclose(first, evaluated)
    # explicit data has rating parts the dropout does not rebuild: refused, naming the setting
    config, train, _ = _train_split("tiny", user_vectors="history", history_dropout=0.5)
    with pytest.raises(ValueError, match="history_dropout.*explicit data"):
        MuSiC(config, train)
    # ID embeddings have no history to drop from: refused too, not ignored
    config, train, _ = _train_split(
        "tiny_implicit", feature_source="collaborative", history_dropout=0.5
    )
    with pytest.raises(ValueError, match="history_dropout.*feature_source=collaborative"):
        MuSiC(config, train)


def test_auto_user_vectors_fall_back_to_history_without_review_tables(tiny_data_root, caplog):
    _write_item_vectors(tiny_data_root)
    _, train, _ = _train_split()
    with caplog.at_level(logging.WARNING):
        rule = resolve_user_vectors("auto", train)
    assert rule == "history" and "user_vectors=history" in caplog.text
    # with history user vectors, the items table alone is enough for multimodal features
    assert resolve_feature_source("auto", rule, train) == "multimodal"
    with pytest.raises(FileNotFoundError, match="users_aux"):
        resolve_feature_source("multimodal", "reviews", train)


def test_auto_user_vectors_use_reviews_and_history_when_both_exist(tiny_data_root):
    _write_item_vectors(tiny_data_root, with_users=True)
    _, train, _ = _train_split()
    assert resolve_user_vectors("auto", train) == "both"
    with pytest.raises(ValueError, match="user_vectors"):
        resolve_user_vectors("bogus", train)


@pytest.mark.parametrize(
    "rule, width", [("history", 2 * ITEM_DIM + 1), ("both", 5 + 2 * ITEM_DIM + 1)]
)
def test_music_projects_the_chosen_user_vectors(tiny_data_root, rule, width):
    _write_item_vectors(tiny_data_root, with_users=True)
    config, train, _ = _train_split(feature_source="multimodal", user_vectors=rule)
    model = MuSiC(config, train)
    assert model.features.user_aux_vectors.shape == (train.user_num, width)
    assert model.features.user_mlp.net[0].in_features == width


def test_bias_coordinate_pins_the_last_item_coordinate_to_one(tiny_data_root):
    config, train, _ = _train_split(feature_source="collaborative", user_bias_coordinate=True)
    model = MuSiC(config, train).eval()
    items = torch.arange(train.item_num)
    features = model.features.items(items)
    assert torch.equal(features[:, -1], torch.ones(train.item_num))
    # so raising one user's last coordinate by 1 raises all their scores by exactly 1
    user = torch.nonzero(
        (train.user_role == UserRole.OVERLAP) & (train.user_split == SplitPart.TRAIN)
    )[0]
    before = model._score(model.features.users_target(user), items, 1)
    with torch.no_grad():
        model.features.user_target_embedding.weight[user, -1] += 1.0
    after = model._score(model.features.users_target(user), items, 1)
    assert torch.allclose(after - before, torch.ones_like(before), atol=1e-6)

    config, train, _ = _train_split(feature_source="collaborative", user_bias_coordinate=False)
    plain = MuSiC(config, train)
    assert not torch.equal(plain.features.items(items)[:, -1], torch.ones(train.item_num))


def _assert_a_test_user_folds_in_to_their_training_u_a(model, train, test):
    """Folding in a held-out user's auxiliary history gives the u_A the model trained on."""
    from recbole_music.inference import ColdStartRecommender

    recommender = ColdStartRecommender(model, train)
    user = int(torch.unique(test.inter_feat["user_id"])[0])
    items, ratings = recommender.history_of(train.id2token("user_id", user))
    folded = recommender.fold_in_aux_feature(items, ratings)
    with torch.no_grad():
        assert torch.allclose(folded, model.features.users_aux(torch.tensor([user]))[0], atol=1e-5)
    return recommender, folded


def test_new_user_aux_feature_from_history_equals_the_training_one(tiny_data_root):
    """With history user vectors, folding in a user's history reproduces their u_A exactly."""
    _write_item_vectors(tiny_data_root)
    config, train, test = _train_split(feature_source="multimodal", user_vectors="history")
    model = MuSiC(config, train).eval()
    recommender, folded = _assert_a_test_user_folds_in_to_their_training_u_a(model, train, test)
    assert recommender.recommend(folded, topk=3).items


def _stage_batch(model, train, stage: str):
    """Every training interaction the stage's loss accepts: side users' target rows (stage 1),
    or the other users' rows without held-out users' target ones (stage 2)."""
    feat = train.inter_feat
    target = feat["domain"] == train.target_domain_id
    users = feat["user_id"]
    rows = (target & model.is_side[users]) if stage == "side_user_loss" else ~model.is_side[users]
    rows &= ~model.is_held_out[users] | ~target
    return feat[rows]


@pytest.mark.parametrize("dataset_name", ["tiny", "tiny_implicit"])
@pytest.mark.parametrize("stage", ["side_user_loss", "joint_loss"])
@pytest.mark.parametrize("hidden", [4, 128])  # inputs (5-18 wide) wider than it, or not
def test_a_training_step_computes_each_first_layer_once_and_gets_the_same_loss(
    tiny_data_root, monkeypatch, dataset_name, stage, hidden
):
    _write_item_vectors(tiny_data_root, dataset_name, with_users=True)
    config, train, _ = _train_split(
        dataset_name, feature_source="multimodal", mlp_hidden_size=hidden
    )
    # training mode: dropout on; each loss term draws its own masks as before, so the same seed
    # gives the same loss
    model = MuSiC(config, train).train()
    batch = _stage_batch(model, train, stage)
    computed = []
    first_layer = model.features._first_layer

    def counting(table, ids):
        computed.append(table)
        return first_layer(table, ids)

    monkeypatch.setattr(model.features, "_first_layer", counting)
    losses = {}
    for way in ("once", "apart"):
        if way == "apart":  # every loss term computing its first layers for itself
            monkeypatch.setattr(
                model.features, "projected_once", lambda **_: contextlib.nullcontext()
            )
        computed.clear()
        model.feature_scale.fill_(1.0)
        model.feature_scale_steps.zero_()
        torch.manual_seed(0)
        losses[way] = (getattr(model, stage)(batch), list(computed))
    (once, tables), (apart, apart_tables) = losses["once"], losses["apart"]
    assert torch.allclose(once, apart, atol=1e-5)
    if hidden == 128:  # narrow inputs: nothing cached, every term projects for itself
        assert tables == apart_tables
        return
    assert sorted(tables) == sorted(set(tables))  # one first layer per table
    assert len(apart_tables) > len(tables)


def test_ids_outside_the_projected_ones_are_projected_as_usual(tiny_data_root):
    _write_item_vectors(tiny_data_root, with_users=True)
    config, train, _ = _train_split(feature_source="multimodal")
    features = MuSiC(config, train).eval().features
    ids = torch.tensor([1, 3, 4])
    with torch.no_grad():
        expected = features.items(ids)
        with features.projected_once(items=torch.tensor([1, 3])):
            assert torch.allclose(features.items(ids), expected)
            assert torch.allclose(features.items(torch.tensor([3, 1, 3])), expected[[1, 0, 1]])
        assert features._first_layer_cache == {}


@pytest.mark.parametrize("weight", [0.0, 3.0])
def test_generated_rating_loss_trains_the_denoiser_through_the_reverse_process(
    tiny_data_root, weight
):
    config, train, _ = _train_split(
        feature_source="collaborative", diffusion_weight=0.0, generated_rating_weight=weight
    )
    model = MuSiC(config, train).train()
    feat = train.inter_feat
    rows = (feat["domain"] == train.target_domain_id) & model.is_train_overlap[feat["user_id"]]
    model.joint_loss(feat[rows]).backward()
    grads = [p.grad for p in model.denoiser.parameters() if p.grad is not None]
    touched = any(g.abs().sum() > 0 for g in grads)
    assert touched == (weight > 0)


@pytest.mark.parametrize("grad_steps", [0, 1])
def test_generated_rating_loss_keeps_the_graph_of_the_configured_reverse_steps(
    tiny_data_root, grad_steps
):
    config, train, _ = _train_split(
        feature_source="collaborative", generated_rating_grad_steps=grad_steps
    )
    model = MuSiC(config, train).train()
    graph_at = []
    denoise = model._denoise

    def spy(x_t, t, cond=None):
        graph_at.append(torch.is_grad_enabled())
        return denoise(x_t, t, cond)

    model._denoise = spy
    users = torch.nonzero(model.is_train_overlap).flatten()[:4]
    items = torch.nonzero(model.target_item_mask).flatten()[:4]
    model._generated_rating_loss(users, items, torch.full((4,), 4.0)).backward()
    steps = model.diffusion.steps
    assert len(graph_at) == steps
    assert sum(graph_at) == (steps if grad_steps == 0 else grad_steps)
    assert graph_at[-1]  # the last step (t = 0) always trains the denoiser


@pytest.mark.parametrize("scaling", [True, False])
def test_diffusion_runs_on_unit_scale_features_and_generation_scales_back(tiny_data_root, scaling):
    config, train, _ = _train_split(
        feature_source="collaborative", diffusion_feature_scaling=scaling
    )
    model = MuSiC(config, train).train()
    users = torch.nonzero(model.is_train_overlap).flatten()
    seen = {}

    def spy(denoiser, x0, cond=None):
        seen["x0"] = x0
        return x0.sum() * 0.0

    model.diffusion.training_loss = spy
    model._diffusion_loss(users, conditional=True)
    own = model.features.users_target(users).detach()
    rms = own.pow(2).mean().sqrt()
    expected_scale = rms if scaling else torch.tensor(1.0)
    assert torch.allclose(model.feature_scale, expected_scale)
    assert torch.allclose(seen["x0"], own / expected_scale)
    model.eval()
    generated = model.generated_target_features()[model.is_held_out]
    with torch.no_grad():
        unscaled = model.diffusion.sample(
            model._denoise,
            cond=model.features.users_aux(torch.nonzero(model.is_held_out).flatten()),
            x_T=model.sampling_noise[model.is_held_out],
            generator=torch.Generator().manual_seed(model.sampling_seed),
        )
    assert torch.allclose(generated, expected_scale * unscaled)


class _Zero(torch.nn.Module):
    """A denoiser that has learnt nothing: it outputs zeros."""

    def forward(self, x, t, cond=None):
        return torch.zeros_like(x)


@pytest.mark.parametrize("residual", [True, False])
def test_condition_residual_generates_u_a_from_a_denoiser_that_learnt_nothing(
    tiny_data_root, residual
):
    config, train, _ = _train_split(feature_source="collaborative", condition_residual=residual)
    model = MuSiC(config, train)
    model.feature_scale.fill_(0.25)  # generation must undo the diffusion's scale exactly
    model.denoiser = _Zero()
    model.eval()
    held = torch.nonzero(model.is_held_out).flatten()
    generated = model.generated_target_features()[held]
    u_a = model.features.users_aux(held).detach()
    # x0-hat = u_A / scale at every step; the last reverse step returns x0-hat itself
    expected = u_a if residual else torch.zeros_like(u_a)
    assert torch.allclose(generated, expected, atol=1e-6)
    assert u_a.abs().sum() > 0


def test_condition_residual_needs_x0_prediction(tiny_data_root):
    config, train, _ = _train_split(diffusion_prediction="eps", condition_residual=True)
    with pytest.raises(ValueError, match="condition_residual.*diffusion_prediction: x0"):
        MuSiC(config, train)


def test_interaction_vectors_come_from_training_rows_only_and_are_deterministic(tiny_data_root):
    _, train, test = _train_split("tiny_implicit")
    first = interaction_item_vectors(train, 4)
    assert first.shape == (train.item_num, 4)
    assert torch.equal(first, interaction_item_vectors(train, 4))  # same data, same vectors
    # each singular vector's sign is fixed: its largest entry is positive (ARPACK's is arbitrary)
    largest = first[first.abs().argmax(dim=0), torch.arange(4)]
    assert (largest > 0).all()
    seen = torch.zeros(train.item_num, dtype=torch.bool)
    seen[train.inter_feat["item_id"]] = True
    assert (first[~seen] == 0).all() and (first[seen].norm(dim=1) > 0).any()
    # a held-out user's target rows are not in the matrix: adding them changes the vectors
    leaked = train.copy(cat_interactions([train.inter_feat, test.inter_feat]))
    assert not torch.allclose(first, interaction_item_vectors(leaked, 4))


def test_symmetric_interaction_vectors_are_the_singular_vectors_of_the_normalised_matrix(
    tiny_data_root,
):
    _, train, _ = _train_split("tiny_implicit")
    users = train.inter_feat["user_id"].numpy()
    items = train.inter_feat["item_id"].numpy()
    matrix = np.zeros((train.user_num, train.item_num))
    matrix[users, items] = 1.0
    user_degree = np.maximum(matrix.sum(1), 1.0)
    item_degree = np.maximum(matrix.sum(0), 1.0)
    normalised = matrix / np.sqrt(user_degree)[:, None] / np.sqrt(item_degree)[None, :]
    _, _, vt = np.linalg.svd(normalised)
    vectors = interaction_item_vectors(train, 3, "symmetric").double().numpy()
    # the same subspace as the top-3 right singular vectors of D_u^-1/2 R D_i^-1/2 (dense SVD)
    top = vt[:3].T
    residual = vectors - top @ (top.T @ vectors)
    assert np.abs(residual).max() < 1e-6 * np.abs(vectors).max()
    binary = interaction_item_vectors(train, 3, "none").double().numpy()
    assert np.abs(binary - top @ (top.T @ binary)).max() > 1e-3  # not the binary matrix's
    seen = matrix.sum(0) > 0
    assert (vectors[~seen] == 0).all()
    assert np.isclose(np.linalg.norm(vectors[seen], axis=1).mean(), 1.0)
    with pytest.raises(ValueError, match="interaction_vector_normalization must be one of"):
        interaction_item_vectors(train, 3, "row")


def test_readout_interaction_vectors_are_the_symmetric_ones_times_root_item_degree(
    tiny_data_root,
):
    _, train, _ = _train_split("tiny_implicit")
    symmetric = interaction_item_vectors(train, 3, "symmetric").double()
    readout = interaction_item_vectors(train, 3, "symmetric_readout").double()
    degree = torch.bincount(train.inter_feat["item_id"], minlength=train.item_num).double()
    assert degree.unique().numel() > 2  # the degrees differ, so the scaling shows
    # D_i^1/2 V, up to one common scale and each vector's sign (both fixed afterwards)
    scaled = symmetric * degree.sqrt()[:, None]
    ratio = (readout * scaled).sum(0) / (scaled * scaled).sum(0)
    assert torch.allclose(readout, scaled * ratio, atol=1e-5)
    assert torch.allclose(ratio.abs(), ratio.abs()[0].expand(3), rtol=1e-4)
    assert not torch.allclose(readout.abs(), symmetric.abs(), atol=1e-3)
    seen = degree > 0
    assert (readout[~seen] == 0).all()
    assert torch.isclose(readout[seen].norm(dim=1).mean(), torch.tensor(1.0, dtype=torch.float64))


def test_filter_interaction_vectors_score_with_the_readout_and_fold_in_users_side(
    tiny_data_root,
):
    _, train, _ = _train_split("tiny_implicit")
    readout = interaction_item_vectors(train, 3, "symmetric_readout")
    items, history = interaction_vector_tables(train, 3, "symmetric_filter")
    assert torch.equal(items, readout)  # the items keep GF-CF's read-out D_i^1/2 V
    symmetric = interaction_item_vectors(train, 3, "symmetric").double()
    degree = torch.bincount(train.inter_feat["item_id"], minlength=train.item_num).double()
    seen = degree > 0
    # the history side is the fold-in D_i^-1/2 V, with the read-out's sign per vector
    folded = torch.zeros_like(symmetric)
    folded[seen] = symmetric[seen] / degree[seen].sqrt()[:, None]
    ratio = (history.double() * folded).sum(0) / (folded * folded).sum(0)
    assert torch.allclose(history.double(), folded * ratio, atol=1e-5)
    assert torch.allclose(ratio.abs(), ratio.abs()[0].expand(3), rtol=1e-4)
    assert (torch.sign(ratio) == torch.sign((items.double() * symmetric).sum(0))).all()
    assert (history[~seen] == 0).all()
    assert torch.isclose(history[seen].norm(dim=1).mean(), torch.tensor(1.0))
    # every other normalization averages the item vectors themselves
    for rule in ("none", "symmetric", "symmetric_readout"):
        same, side = interaction_vector_tables(train, 3, rule)
        assert side is same


def test_filter_builds_users_from_the_fold_in_side_and_new_users_alike(tiny_data_root):
    config, train, test = _train_split(
        "tiny_implicit",
        interaction_vector_dim=3,
        interaction_vector_normalization="symmetric_filter",
    )
    model = MuSiC(config, train).eval()
    items, history = interaction_vector_tables(train, 3, "symmetric_filter")
    assert torch.allclose(model.features.item_vectors, items)
    assert torch.allclose(model.features.history_items, history)
    expected = user_history_vectors(train, history, target=False)
    assert torch.allclose(model.features.user_aux_vectors, expected)
    assert not torch.allclose(expected, user_history_vectors(train, items, target=False))
    # a new user's vector is folded in from the same side (their u_A as in training)
    _assert_a_test_user_folds_in_to_their_training_u_a(model, train, test)
    # other normalizations keep no second table
    config, train, _ = _train_split("tiny_implicit", interaction_vector_dim=3)
    assert MuSiC(config, train).features.history_only_vectors is None


def test_music_reads_the_configured_interaction_normalization(tiny_data_root):
    built = {}
    for rule in ("none", "symmetric", "symmetric_readout", "symmetric_filter"):
        config, train, _ = _train_split(
            "tiny_implicit", interaction_vector_dim=3, interaction_vector_normalization=rule
        )
        built[rule] = MuSiC(config, train).features.item_vectors
        assert torch.allclose(built[rule], interaction_item_vectors(train, 3, rule))
    assert not torch.allclose(built["none"], built["symmetric"])


def test_auto_feature_source_uses_interaction_vectors_without_content(tiny_data_root, caplog):
    config, train, _ = _train_split("tiny", interaction_vector_dim=4)  # explicit, no tables
    with caplog.at_level(logging.WARNING):
        model = MuSiC(config, train)
    assert model.feature_source == "interactions" and "feature_source=interactions" in caplog.text
    assert model.features.item_vectors.shape == (train.item_num, 4)
    config, train, _ = _train_split("tiny_implicit", interaction_vector_dim=0)
    assert MuSiC(config, train).feature_source == "collaborative"


def test_hybrid_appends_interaction_vectors_to_the_content_vectors(tiny_data_root):
    _write_item_vectors(tiny_data_root)
    config, train, _ = _train_split(feature_source="hybrid", interaction_vector_dim=3)
    model = MuSiC(config, train)
    assert model.features.item_vectors.shape == (train.item_num, ITEM_DIM + 3)
    content, _ = train.load_features("items", "item_id")
    assert torch.allclose(model.features.item_vectors[:, :ITEM_DIM], content.float())
    config, train, _ = _train_split(feature_source="multimodal", interaction_vector_dim=3)
    assert MuSiC(config, train).features.item_vectors.shape == (train.item_num, ITEM_DIM)
    config, train, _ = _train_split(feature_source="hybrid", interaction_vector_dim=0)
    with pytest.raises(ValueError, match="interaction_vector_dim"):
        MuSiC(config, train)


def test_auto_reads_interactions_on_implicit_data_and_content_on_explicit(tiny_data_root, caplog):
    _write_item_vectors(tiny_data_root, "tiny_implicit")
    _write_item_vectors(tiny_data_root, "tiny")
    _, implicit, _ = _train_split("tiny_implicit")
    with caplog.at_level(logging.INFO):
        assert resolve_feature_source("auto", "history", implicit, 4) == "interactions"
    assert "implicit feedback -> feature_source=interactions" in caplog.text
    assert resolve_feature_source("multimodal", "history", implicit, 4) == "multimodal"
    _, explicit, _ = _train_split("tiny")
    assert resolve_feature_source("auto", "history", explicit, 4) == "multimodal"


def test_content_mapping_recovers_a_linear_relation_and_leaves_seen_items_alone():
    rng = np.random.default_rng(1)
    content = torch.from_numpy(rng.normal(size=(200, 8))).float()
    truth = content @ torch.from_numpy(rng.normal(size=(8, 3))).float() + 0.5
    seen = np.ones(200, dtype=bool)
    seen[150:] = False  # items without training interactions: zero interaction vectors
    interaction = truth.clone()
    interaction[~torch.from_numpy(seen)] = 0.0
    has_content = np.ones(200, dtype=bool)
    has_content[180:] = False  # no content either: they stay zero
    mapped, report = map_content_to_interactions(interaction, content, seen, has_content)
    assert report["mapped"] == 30 and report["fit_on"] == 149  # padding row 0 excluded
    assert torch.equal(mapped[:150], interaction[:150])
    assert torch.allclose(mapped[150:180], truth[150:180], rtol=0.03, atol=0.05)
    assert torch.equal(mapped[180:], torch.zeros(20, 3))
    assert report["held_out_r2"] > 0.99
    again, _ = map_content_to_interactions(interaction, content, seen, has_content)
    assert torch.equal(again, mapped)  # the same data gives the same vectors


def test_cold_item_vectors_content_fills_the_unseen_items_of_a_dual_split(tiny_data_root, caplog):
    _write_item_vectors(tiny_data_root, "tiny_implicit")
    overrides = {
        "cold_item_ratio": 0.2,
        "feature_source": "interactions",
        "interaction_vector_dim": 4,
    }
    config, train, _ = _train_split("tiny_implicit", cold_item_vectors="zero", **overrides)
    seen = torch.from_numpy(items_with_training_interactions(train))
    unseen_targets = train.target_item_mask & ~seen
    assert unseen_targets.any()
    plain = MuSiC(config, train)
    assert plain.unseen_item_scoring is None  # zeros: nothing of its own
    assert plain.features.item_vectors[unseen_targets].abs().sum() == 0
    config, train, _ = _train_split("tiny_implicit", cold_item_vectors="content", **overrides)
    with caplog.at_level(logging.INFO):
        mapped = MuSiC(config, train)
    assert "mapped from their content" in caplog.text
    assert "mapped from its content" in mapped.unseen_item_scoring
    assert (mapped.features.item_vectors[unseen_targets].abs().sum(1) > 0).all()
    assert torch.equal(mapped.features.item_vectors[seen], plain.features.item_vectors[seen])


def test_cold_item_vectors_content_without_the_items_table_is_a_clear_error(tiny_data_root):
    config, train, _ = _train_split(
        "tiny_implicit", feature_source="interactions", cold_item_vectors="content"
    )
    with pytest.raises(FileNotFoundError, match="cold_item_vectors=content needs the items"):
        MuSiC(config, train)


@pytest.mark.parametrize(
    "dataset_name, tables, source, maps",
    [
        # implicit: the interaction vectors rank; an unseen item gets the evaluator's fallback
        ("tiny_implicit", True, "interactions", False),
        ("tiny_implicit", False, "interactions", False),
        ("tiny", True, "multimodal", False),  # explicit: the content vectors, as without new items
    ],
)
def test_auto_in_the_dual_cold_start(tiny_data_root, dataset_name, tables, source, maps):
    if tables:
        _write_item_vectors(tiny_data_root, dataset_name)
    config, train, _ = _train_split(dataset_name, cold_item_ratio=0.2, interaction_vector_dim=4)
    model = MuSiC(config, train)
    assert model.feature_source == source
    assert model.features.maps_unseen_items is maps
    assert (model.unseen_item_scoring is None) is (source == "interactions" and not maps)


def test_checkpoints_keep_a_fingerprint_of_the_frozen_vectors_not_the_vectors(tiny_data_root):
    config, train, _ = _train_split("tiny", interaction_vector_dim=4)
    model = MuSiC(config, train)
    state = model.state_dict()
    assert not any(key.endswith(FROZEN_TABLES) for key in state)
    assert state["features.frozen_fingerprint"].shape == (3, 4)
    # a model rebuilt from the same data takes the checkpoint
    MuSiC(config, train).load_state_dict(state)
    # tables that changed since training are refused, by name
    changed = dict(state)
    changed["features.frozen_fingerprint"] = state["features.frozen_fingerprint"].clone()
    changed["features.frozen_fingerprint"][0, 2] += 1.0
    with pytest.raises(RuntimeError, match=r"frozen feature vectors \['item_vectors'\]"):
        MuSiC(config, train).load_state_dict(changed)


def test_a_checkpoint_holding_the_frozen_vectors_themselves_still_loads(tiny_data_root):
    """Checkpoints written before the vectors left them hold the tables: compared, then dropped."""
    config, train, _ = _train_split("tiny", interaction_vector_dim=4)
    model = MuSiC(config, train)
    old = {k: v for k, v in model.state_dict().items() if k != "features.frozen_fingerprint"}
    for name in FROZEN_TABLES:
        old[f"features.{name}"] = getattr(model.features, name).clone()
    MuSiC(config, train).load_state_dict(old)
    old["features.user_aux_vectors"] = old["features.user_aux_vectors"] + 0.5
    with pytest.raises(RuntimeError, match=r"\['user_aux_vectors'\]"):
        MuSiC(config, train).load_state_dict(old)


@pytest.mark.parametrize("dataset_name", ["tiny", "tiny_implicit"])
@pytest.mark.parametrize("stage", ["side_user_loss", "joint_loss"])
def test_a_shared_step_projects_each_table_once_and_equals_per_term_losses_without_dropout(
    tiny_data_root, monkeypatch, dataset_name, stage
):
    """loss_terms_share: step projects each table once (one dropout mask for every term) and
    gives the target and generated rating losses one draw of negatives; with no dropout and
    the same negatives, loss and gradients are those of the per-term projections."""
    _write_item_vectors(tiny_data_root, dataset_name, with_users=True)
    config, train, _ = _train_split(
        dataset_name,
        feature_source="multimodal",
        mlp_hidden_size=4,
        dropout_prob=0.0,
        loss_terms_share="step",
        num_negatives=3,
    )
    model = MuSiC(config, train).train()
    with torch.no_grad():  # item biases that differ, so a misplaced one would show
        model.item_bias.weight.copy_(torch.randn(model.item_bias.weight.shape))
    batch = _stage_batch(model, train, stage)
    drawn, projected = [], []

    def fixed_negatives(count, pool):  # the same items for the same call, in either way
        drawn.append(count)
        return pool[(torch.arange(count * 3).view(count, 3) * 7) % len(pool)]

    project = model.features._project

    def counting(table, ids):
        projected.append(table)
        return project(table, ids)

    monkeypatch.setattr(model, "_negatives", fixed_negatives)
    monkeypatch.setattr(model.features, "_project", counting)
    results = {}
    for shared in (True, False):
        model.features.shares_step = shared
        drawn.clear(), projected.clear()
        model.zero_grad()
        model.feature_scale.fill_(1.0)
        model.feature_scale_steps.zero_()
        torch.manual_seed(0)
        loss = getattr(model, stage)(batch)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results[shared] = (loss.detach(), grads, list(drawn), list(projected))
    (loss, grads, draws, tables), (apart, apart_grads, apart_draws, apart_tables) = (
        results[True],
        results[False],
    )
    assert torch.allclose(loss, apart, atol=1e-5)
    assert len(grads) == len(apart_grads)
    assert all(torch.allclose(g, h, atol=1e-5) for g, h in zip(grads, apart_grads))
    assert sorted(tables) == sorted(set(tables))  # each table once
    assert len(apart_tables) > len(tables)
    if not model.explicit and stage == "joint_loss":
        assert len(draws) == len(apart_draws) - 1  # the generated loss reuses the target draw


def test_loss_terms_share_is_checked(tiny_data_root):
    config, train, _ = _train_split(loss_terms_share="all")
    with pytest.raises(ValueError, match="loss_terms_share must be one of"):
        MuSiC(config, train)
