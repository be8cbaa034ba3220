"""MuSiC model and staged trainer on tiny data: stages, ablations, determinism, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import make_config, write_tiny_cross_domain
from recbole.data.interaction import Interaction

import recbole_music
import recbole_music.config
from recbole_music.data.dataset import SplitPart, UserRole
from recbole_music.model.music import MuSiC
from recbole_music.quick_start import prepare_data, run_recbole_music
from recbole_music.trainer.music_trainer import MuSiCTrainer

FAST = {"epochs": 3, "stage1_epochs": 2, "state": "ERROR", "show_progress": False}


def make_model(dataset="tiny", **overrides):
    config = make_config("MuSiC", dataset, **{**FAST, **overrides})
    from recbole_music.data.dataset import CrossDomainDataset

    data = CrossDomainDataset(config)
    train_data, valid, test = prepare_data(config, data)
    torch.manual_seed(0)
    model = MuSiC(config, train_data._dataset)
    return config, model, train_data, valid, test


def test_each_stage_sees_only_its_users(tiny_data_root):
    config, model, train_data, valid, test = make_model()
    seen = {"stage 1": [], "stage 2": []}
    side_loss, joint_loss = model.side_user_loss, model.joint_loss

    def spy_side(inter):
        seen["stage 1"].append(inter)
        return side_loss(inter)

    def spy_joint(inter):
        seen["stage 2"].append(inter)
        return joint_loss(inter)

    model.side_user_loss, model.joint_loss = spy_side, spy_joint
    MuSiCTrainer(config, model).fit(train_data, valid, saved=False, verbose=False)
    dataset = train_data._dataset
    target_id = dataset.target_domain_id
    for inter in seen["stage 1"]:
        users = inter["user_id"]
        assert (dataset.user_role[users] == UserRole.SIDE).all()
        assert (inter["domain"] == target_id).all()
    target_users = torch.cat([i["user_id"][i["domain"] == target_id] for i in seen["stage 2"]])
    assert (dataset.user_role[target_users] == UserRole.OVERLAP).all()
    assert (dataset.user_split[target_users] == SplitPart.TRAIN).all()
    assert seen["stage 1"] and seen["stage 2"]


def test_stage_losses_refuse_the_wrong_users(tiny_data_root):
    _, model, train_data, _, test = make_model()
    test_inter = test.inter_feat  # held-out users' target interactions
    with pytest.raises(RuntimeError, match="stage 2"):
        model.joint_loss(test_inter)
    with pytest.raises(RuntimeError, match="stage 1"):
        model.side_user_loss(test_inter)


def test_held_out_users_get_generated_features_not_their_own(tiny_data_root):
    _, model, _, _, test = make_model()
    model.eval()
    users = torch.unique(test.inter_feat["user_id"])
    generated = model.user_target_features(users)
    own = model.features.users_target(users)
    assert not torch.allclose(generated, own)
    assert torch.equal(generated, model.generated_target_features()[users])
    # the same users scored alone or with others get the same features (fixed noise per user)
    assert torch.equal(model.user_target_features(users[:1])[0], generated[0])


def test_ablation_switches_change_what_runs(tiny_data_root):
    _, full, train_data, _, test = make_model()
    _, no_diffusion, *_ = make_model(use_diffusion=False)
    users = torch.unique(test.inter_feat["user_id"])
    no_diffusion.eval()
    assert torch.equal(
        no_diffusion.user_target_features(users), no_diffusion.features.users_aux(users)
    )
    # w/o diffusion: the joint loss has no diffusion term, so the U-Net gets no gradient
    batch = next(
        iter(
            MuSiCTrainer(make_config("MuSiC", "tiny", **FAST), no_diffusion)._stage_loader(
                train_data._dataset,
                MuSiCTrainer(make_config("MuSiC", "tiny", **FAST), no_diffusion).stage_rows(
                    train_data._dataset
                )[1],
            )
        )
    )
    no_diffusion.train()
    no_diffusion.joint_loss(batch).backward()
    assert all(p.grad is None for p in no_diffusion.denoiser.parameters())


def _target_rows_of_training_users(model, train_data):
    trainer = MuSiCTrainer(make_config("MuSiC", "tiny", **FAST), model)
    batch = next(
        iter(trainer._stage_loader(train_data._dataset, trainer.stage_rows(train_data._dataset)[1]))
    )
    target = batch["domain"] == train_data._dataset.target_domain_id
    return batch[torch.nonzero(target).flatten()]


@pytest.mark.parametrize("direct_transfer", [False, True])
def test_without_diffusion_only_direct_transfer_trains_u_A_on_target_ratings(
    tiny_data_root, direct_transfer
):
    # collaborative features: u_A and u_T are separate embeddings, so gradients tell them apart
    _, model, train_data, _, test = make_model(
        use_diffusion=False, direct_transfer=direct_transfer, feature_source="collaborative"
    )
    rows = _target_rows_of_training_users(model, train_data)
    model.train()
    model.joint_loss(rows).backward()
    aux_grad = model.features.user_aux_embedding.weight.grad
    target_grad = model.features.user_target_embedding.weight.grad
    # the paper's ablation: target ratings train the users' own u_T; direct transfer: u_A
    assert (aux_grad is not None and aux_grad.abs().sum() > 0) == direct_transfer
    assert (target_grad is not None and target_grad.abs().sum() > 0) != direct_transfer
    # either way a cold-start user is scored with u_A, and a training user as trained
    model.eval()
    held = torch.unique(test.inter_feat["user_id"])
    assert torch.equal(model.user_target_features(held), model.features.users_aux(held))
    trained = torch.unique(rows["user_id"])
    expected = model.features.users_aux if direct_transfer else model.features.users_target
    assert torch.equal(model.user_target_features(trained), expected(trained))


def test_without_side_users_stage_1_is_skipped(tiny_data_root, caplog):
    config, model, train_data, valid, _ = make_model(use_side_users=False)
    calls = []
    model.side_user_loss = lambda inter: calls.append(inter)
    with caplog.at_level(logging.INFO):
        MuSiCTrainer(config, model).fit(train_data, valid, saved=False)
    assert calls == []
    assert "stage 1" in caplog.text and "skipped" in caplog.text


def test_dataset_without_side_users_warns_and_runs(tiny_data_root, caplog):
    write_tiny_cross_domain(tiny_data_root, "noside", n_side=0)
    with caplog.at_level(logging.WARNING):
        result = run_recbole_music("MuSiC", "noside", config_dict=dict(FAST), saved=False)
    assert "no side users" in caplog.text
    assert "rmse" in result["test_result"]


def test_the_settings_line_says_what_the_run_does(tiny_data_root, caplog):
    write_tiny_cross_domain(tiny_data_root, "noside", n_side=0)
    with caplog.at_level(logging.INFO):
        # no feature tables, no interaction vectors: collaborative features, no user vectors
        make_model("noside", interaction_vector_dim=0)
    line = next(
        r.getMessage() for r in caplog.records if r.getMessage().startswith("MuSiC: feature_source")
    )
    assert "-> feature_source=collaborative" in caplog.text  # auto, and the log says why
    assert "user vectors: none (learned ID embeddings)" in line
    assert "stage 1 (side users): skipped, no side users (use_side_users has no effect)" in line
    assert "use_side_users=True" not in line and "user_vectors=" not in line
    caplog.clear()
    with caplog.at_level(logging.INFO):
        make_model(stage1_epochs=0)
    assert "stage 1 (side users): skipped, stage1_epochs=0" in caplog.text


def test_no_training_overlap_users_is_a_clear_error(tiny_data_root):
    # one overlapping user cannot be both a cold-start test user and a training user
    write_tiny_cross_domain(tiny_data_root, "fewoverlap", n_overlap=1)
    with pytest.raises(ValueError, match="overlapping users"):
        make_model("fewoverlap", valid_ratio=0.0)


def test_zero_diffusion_steps_is_refused(tiny_data_root):
    with pytest.raises(ValueError):
        make_model(diffusion_steps=0)


def test_nan_loss_names_stage_epoch_and_batch(tiny_data_root):
    config, model, train_data, valid, _ = make_model(feature_source="collaborative")
    with torch.no_grad():
        model.features.user_target_embedding.weight[:] = float("nan")
    with pytest.raises(FloatingPointError, match=r"stage 1: loss is nan at epoch 0, batch 0"):
        MuSiCTrainer(config, model).fit(train_data, valid, saved=False)


def test_same_seed_same_numbers_and_checkpoint_round_trip(tiny_data_root):
    first = run_recbole_music("MuSiC", "tiny", config_dict=dict(FAST), saved=True)
    second = run_recbole_music("MuSiC", "tiny", config_dict=dict(FAST), saved=True)
    assert first["test_result"] == second["test_result"]
    other = run_recbole_music("MuSiC", "tiny", config_dict={**FAST, "seed": 7}, saved=False)
    assert other["test_result"] != first["test_result"]


def test_overfits_a_tiny_data_set(tiny_data_root):
    """Training RMSE on the training overlap users falls well below its starting value."""
    config, model, train_data, valid, _ = make_model(
        epochs=60, stage1_epochs=5, learning_rate=0.01, dropout_prob=0.0
    )
    dataset = train_data._dataset
    feat = dataset.inter_feat
    rows = (feat["domain"] == dataset.target_domain_id) & model.is_train_overlap[feat["user_id"]]
    inter = Interaction({k: feat[k][rows] for k in ("user_id", "item_id", "rating", "domain")})

    def train_rmse():
        model.eval()
        with torch.no_grad():
            return torch.sqrt(((model.predict(inter) - inter["rating"]) ** 2).mean()).item()

    before = train_rmse()
    MuSiCTrainer(config, model).fit(train_data, None, saved=False, verbose=False)
    after = train_rmse()
    assert after < 0.6 * before, (before, after)


def test_implicit_data_trains_with_ranking_loss(tiny_data_root):
    result = run_recbole_music("MuSiC", "tiny_implicit", config_dict=dict(FAST), saved=False)
    assert set(result["test_result"]) == {"ndcg@20", "recall@20", "hit@20"}


def test_weight_average_is_what_validation_sees_and_training_continues_from_live_weights(
    tiny_data_root,
):
    decay = 0.5
    config, model, train_data, valid, _ = make_model(ema_decay=decay, epochs=3)
    trainer = MuSiCTrainer(config, model)
    before_step, after_step, expected = [], [], []

    def weights():
        return [p.detach().clone() for p in model.parameters()]

    def record_after(*_):
        after_step.append(weights())
        # by hand: the exponential moving average of the weights after every stage-2 step
        if expected:
            expected[:] = [decay * e + (1 - decay) * n for e, n in zip(expected, after_step[-1])]
        else:
            expected[:] = after_step[-1]

    trainer.optimizer.register_step_pre_hook(lambda *_: before_step.append(weights()))
    trainer.optimizer.register_step_post_hook(record_after)
    trainer.fit(train_data, valid, saved=False, verbose=False)
    assert len(after_step) >= 3  # one step per epoch at least
    # validation ran last, so the model holds the averaged weights, not the last step's
    for p, e in zip(model.parameters(), expected):
        assert torch.allclose(p, e, atol=1e-6)
    assert any(not torch.equal(p, last) for p, last in zip(model.parameters(), after_step[-1]))
    # every step, across the validations between epochs, starts from the previous step's
    # weights: training never continues from the average
    for previous, following in zip(after_step, before_step[1:]):
        assert all(torch.equal(a, b) for a, b in zip(previous, following))


def test_without_weight_average_validation_sees_the_last_step(tiny_data_root):
    config, model, train_data, valid, _ = make_model(ema_decay=0.0, epochs=1)
    trainer = MuSiCTrainer(config, model)
    trainer.fit(train_data, valid, saved=False, verbose=False)
    assert trainer._average is None and trainer._live_weights is None


def test_softmax_ranking_loss_is_a_positive_against_its_negatives(tiny_data_root):
    _, model, _, _, _ = make_model("tiny_implicit", ranking_loss="softmax", num_negatives=3)
    model.eval()  # no dropout: the item features are the same in both computations
    users, items = torch.tensor([1, 2]), torch.tensor([3, 4])
    pool = torch.tensor([5])  # one candidate: every negative is item 5
    feat = model.features.users_aux(users)
    loss = model._rating_loss(feat, items, None, 1, pool)
    positive = model._score(feat, items, 1)
    negative = model._score(feat, pool.repeat(2), 1)  # each user against item 5
    logits = torch.stack([positive, negative, negative, negative], dim=1)
    expected = (torch.logsumexp(logits, 1) - positive).mean()
    assert torch.allclose(loss, expected)
    with pytest.raises(ValueError, match="ranking_loss"):
        make_model("tiny_implicit", ranking_loss="hinge")


def test_bce_ranking_loss_scores_each_positive_and_each_of_its_negatives(tiny_data_root):
    _, model, _, _, _ = make_model("tiny_implicit", ranking_loss="bce", num_negatives=2)
    model.eval()
    users, items = torch.tensor([1, 2]), torch.tensor([3, 4])
    pool = torch.tensor([5, 6, 7])
    feat = model.features.users_aux(users)
    torch.manual_seed(1)
    loss = model._rating_loss(feat, items, None, 1, pool)
    torch.manual_seed(1)  # the same draws: user b's negatives are row b
    negatives = pool[torch.randint(len(pool), (2, 2))]
    assert negatives[0].tolist() != negatives[1].tolist()  # a mix-up of rows would show
    positive = model._score(feat, items, 1)
    negative = torch.stack([model._score(feat, negatives[:, j], 1) for j in range(2)], 1)
    expected = torch.cat(
        [F.softplus(-positive), F.softplus(negative).flatten()]
    ).mean()  # -log sigmoid(s) for positives, -log(1 - sigmoid(s)) for negatives
    assert torch.allclose(loss, expected, atol=1e-6)


def test_shared_negatives_score_each_row_against_its_groups_draw(tiny_data_root):
    _, model, _, _, _ = make_model("tiny_implicit", num_negatives=2, negatives_shared_by=2)
    model.eval()
    assert model.rating_bias
    with torch.no_grad():  # item biases that differ, so a misplaced one would show
        model.item_bias.weight.copy_(torch.randn(model.item_bias.weight.shape))
    users, items = torch.tensor([1, 2, 3, 1, 2]), torch.tensor([3, 4, 5, 6, 7])
    pool = torch.tensor([5, 6, 7, 8])
    feat = model.features.users_aux(users)
    torch.manual_seed(3)
    loss = model._rating_loss(feat, items, None, 1, pool)
    torch.manual_seed(3)  # the same draws: one row of negatives per group of 2 rows (3 groups)
    drawn = pool[torch.randint(len(pool), (3, 2))]
    assert len({tuple(row) for row in drawn.tolist()}) > 1  # a mix-up of groups would show
    negatives = drawn[torch.tensor([0, 0, 1, 1, 2])]  # rows 0-1, 2-3 and the last alone
    positive = model._score(feat, items, 1)
    negative = model._score(feat, negatives, 1)  # each row against its group's negatives
    expected = torch.cat([F.softplus(-positive), F.softplus(negative).flatten()]).mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    with pytest.raises(ValueError, match="negatives_shared_by"):
        make_model("tiny_implicit", negatives_shared_by=0)


def test_the_paper_configuration_is_one_config_file_away(tiny_data_root):
    """properties/model/MuSiC-paper.yaml switches every addition of ours off; a run with it
    builds the paper's model (no residual, raw features, DDPM variance, no bias terms)."""
    import yaml

    paper = Path(recbole_music.config.PROPERTIES_DIR) / "model" / "MuSiC-paper.yaml"
    settings = yaml.safe_load(paper.read_text())
    defaults = yaml.safe_load((paper.parent / "MuSiC.yaml").read_text())
    assert set(settings) <= set(defaults)  # every key is one of MuSiC's own
    assert all(settings[key] != defaults[key] for key in settings)  # each one switches
    result = run_recbole_music(
        "MuSiC", "tiny", config_file_list=[str(paper)], config_dict=dict(FAST), saved=False
    )
    assert "rmse" in result["test_result"]
    _, model, *_ = make_model(**settings)
    assert not model.condition_residual and not model.rating_bias
    assert model.diffusion.sampling_variance == "beta"


@pytest.mark.parametrize("rating_clip", [True, False])
def test_predicted_ratings_are_clipped_to_the_trained_scale_rankings_are_not(
    tiny_data_root, rating_clip
):
    """rating_clip (explicit data): ``predict`` stays within the lowest and highest target
    rating seen in training, however far the scores run; ``full_sort_predict`` keeps them."""
    _, model, train_data, *_ = make_model(rating_clip=rating_clip)
    dataset = train_data._dataset
    feat = dataset.inter_feat
    target = feat[dataset.rating_field][feat[dataset.domain_field] == dataset.target_domain_id]
    low, high = target.min().item(), target.max().item()
    model.eval()
    with torch.no_grad():  # two items far above the scale, one far below
        items = model.target_items[:3]
        model.item_bias.weight[items] = torch.tensor([[10.0], [20.0], [-20.0]])
    users = torch.zeros(3, dtype=torch.long) + model.is_held_out.nonzero()[0, 0]
    with torch.no_grad():
        rated = model.predict(Interaction({"user_id": users, "item_id": items}))
        ranked = model.full_sort_predict(Interaction({"user_id": users[:1]}))[items]
    assert ranked[1] > ranked[0] > high and ranked[2] < low  # the scores do run off the scale
    if rating_clip:
        assert rated.tolist() == pytest.approx([high, high, low])
    else:
        assert rated.tolist() == pytest.approx(ranked.tolist())


def test_rating_clip_leaves_implicit_data_alone(tiny_data_root):
    _, model, *_ = make_model("tiny_implicit", rating_clip=True)
    assert not model.rating_clip
