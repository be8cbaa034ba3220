"""CATN and OmniMatch: their review documents, training and scoring, and data without review text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import build_split, make_config, write_tiny_cross_domain

import run_recbole_music
from dataset_prep.layout import has_review_text
from recbole_music.data.dataset import SplitPart, UserRole
from recbole_music.data.review_documents import (
    PAD,
    ReviewCorpus,
    ReviewTextMissingError,
    _auxiliary_picks,
    build_documents,
    read_training_reviews,
)
from recbole_music.model.baselines import CATN, OmniMatch
from recbole_music.model.baselines.omnimatch import _ReverseGradient, supervised_contrastive
from recbole_music.quick_start import run_recbole_music as run

FAST = {"epochs": 3, "max_doc_tokens": 16, "embedding_size": 8, "conv_filters": 8}


@pytest.fixture
def review_root(tiny_data_root):
    write_tiny_cross_domain(tiny_data_root, "tiny_reviews", reviews=True)
    write_tiny_cross_domain(tiny_data_root, "tiny_reviews_implicit", reviews=True, explicit=False)
    return tiny_data_root


def _train(dataset="tiny_reviews", **overrides):
    data, (train, _, _) = build_split("CATN", dataset, **overrides)
    return train


def test_documents_read_training_reviews_only(review_root):
    train = _train()
    reviews = read_training_reviews(train, "CATN")
    feat = train.inter_feat
    pairs = set(zip(feat["user_id"].tolist(), feat["item_id"].tolist()))
    assert set(zip(reviews["user"], reviews["item"])) == pairs  # one review per training row
    held_out = (train.user_role == UserRole.OVERLAP) & (train.user_split != SplitPart.TRAIN)
    held = torch.nonzero(held_out).flatten()
    assert len(held) > 0
    assert not reviews.loc[reviews["target"], "user"].isin(held.tolist()).any()

    docs = build_documents(train, "CATN", max_tokens=12, seed=1)
    # a held-out user has no target-domain document, but auxiliary-domain ones to be scored from
    assert (docs.users[1][held] == PAD).all()
    assert (docs.users[0][held] != PAD).any(dim=1).all()
    assert (docs.auxiliary[0][held] != PAD).any(dim=1).all()
    assert docs.users[0].shape == (train.user_num, 12)
    assert int(docs.users[0].max()) < len(docs.vocabulary)


def test_an_auxiliary_review_is_another_users_review_of_the_item_at_the_same_rating():
    reviews = pd.DataFrame(
        {
            "user": [1, 2, 3, 4, 5],
            "item": [7, 7, 7, 8, 9],
            "rating": [4.0, 4.0, 5.0, 2.0, 3.0],
        }
    )
    picks = _auxiliary_picks(reviews, explicit=True, seed=0)
    assert picks[0] == 1 and picks[1] == 0  # same item, same rating, another user
    assert picks[2] in (0, 1)  # no other 5-star review of item 7: a 4-star one
    assert picks[3] == -1 and picks[4] == -1  # nobody else reviewed items 8 and 9
    again = _auxiliary_picks(reviews, explicit=True, seed=0)
    assert np.array_equal(picks, again)


# OmniMatch's rating layer is linear over [user; item] features: it fits a user and an item
# part, not their interaction, which is all the tiny data's ratings are (docs/baselines.md)
@pytest.mark.parametrize(
    "model_class, settings, bound",
    [(CATN, {}, 0.5), (OmniMatch, {"adversarial_weight": 0.0, "contrastive_weight": 0.0}, 0.9)],
)
def test_model_learns_and_its_full_ranking_agrees_with_predict(
    review_root, model_class, settings, bound
):
    name = model_class.__name__
    config = make_config(name, "tiny_reviews", **FAST, **settings)
    data, (train, _, test) = build_split(name, "tiny_reviews", **FAST, **settings)
    torch.manual_seed(0)
    model = model_class(config, train)
    batch = train.inter_feat[model.training_rows(train)]
    target = batch[batch["domain"] == train.target_domain_id]

    def target_error():
        model.eval()
        with torch.no_grad():
            error = torch.nn.functional.mse_loss(model.predict(target), target["rating"])
        model.train()
        return error.item()

    before = target_error()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    for _ in range(120):
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
    assert target_error() < bound * before, (before, target_error())
    model.eval()
    users = torch.nonzero(~model.is_train_overlap).flatten()[:3]
    items = torch.nonzero(model.target_item_mask).flatten()[:4]
    from recbole.data.interaction import Interaction

    with torch.no_grad():
        full = model.full_sort_predict(Interaction({"user_id": users})).view(len(users), -1)
        pairs = Interaction(
            {"user_id": users.repeat_interleave(len(items)), "item_id": items.repeat(len(users))}
        )
        single = model.predict(pairs).view(len(users), len(items))
    assert torch.allclose(full[:, items], single, atol=1e-5)
    if model_class is OmniMatch:  # additive: every user ranks the target items alike
        gap = full[0] - full[1]
        assert torch.allclose(gap, gap[0].expand_as(gap), atol=1e-4)


@pytest.mark.parametrize("model", ["CATN", "OmniMatch"])
@pytest.mark.parametrize("dataset", ["tiny_reviews", "tiny_reviews_implicit"])
def test_model_runs_on_the_protocol(review_root, dataset, model):
    result = run(model, dataset, config_dict=dict(FAST), saved=False)
    metrics = set(result["test_result"])
    assert {"ndcg@20", "recall@20"} <= metrics
    assert ("rmse" in metrics) == (dataset == "tiny_reviews")


@pytest.mark.parametrize("model", ["CATN", "OmniMatch"])
def test_data_without_review_text_stops_with_exit_code_2(review_root, capsys, model):
    code = run_recbole_music.main([f"--model={model}", "--dataset=tiny", "--epochs=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{model} needs review text" in err and "tiny.review does not exist" in err
    train = _train("tiny")
    with pytest.raises(ReviewTextMissingError, match="needs review text"):
        build_documents(train, "CATN", 8, 1)


@pytest.mark.parametrize("model", ["CATN", "OmniMatch"])
def test_a_header_only_review_file_is_no_review_text(review_root, capsys, model):
    """A dataset built from interactions alone has a review file with its header only."""
    folder = review_root / "tiny"
    (folder / "tiny.review").write_text(
        "user_id:token\titem_id:token\tdomain:token\ttext:token_seq\n"
    )
    assert not has_review_text(folder / "tiny.review")
    assert has_review_text(review_root / "tiny_reviews" / "tiny_reviews.review")
    code = run_recbole_music.main([f"--model={model}", "--dataset=tiny", "--epochs=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{model} needs review text" in err and "has no review with text" in err


def test_borrowed_target_documents_lend_agreeing_training_users_target_reviews(review_root):
    train = _train()
    corpus = ReviewCorpus(train, "OmniMatch", max_tokens=64, seed=1)
    donors = (train.user_role == UserRole.OVERLAP) & (train.user_split == SplitPart.TRAIN)
    borrowed = corpus.borrowed_target_documents(donors)
    reviews = corpus.reviews
    held = torch.nonzero((train.user_role == UserRole.OVERLAP) & ~donors).flatten()
    for user in held.tolist()[:5]:
        doc = borrowed[user][borrowed[user] != PAD].tolist()
        assert doc, user
        # the document opens with a donor's target review; that donor rated one of the user's
        # auxiliary items as the user did
        mine = reviews[(reviews["user"] == user) & ~reviews["target"]]
        lent = [
            row
            for row in np.flatnonzero(reviews["target"].to_numpy())
            if doc[: len(corpus.pieces[row])] == corpus.pieces[row]
            and donors[int(reviews.at[row, "user"])]
        ]
        assert lent, user
        agreeing = reviews[~reviews["target"]].merge(
            mine[["item", "rating"]], on=["item", "rating"]
        )
        donor_ids = {int(reviews.at[row, "user"]) for row in lent}
        assert donor_ids & set(agreeing["user"].tolist()) - {user}
    # a user with no agreeing donor gets no document
    no_donors = corpus.borrowed_target_documents(torch.zeros_like(donors))
    assert (no_donors == PAD).all()


def test_supervised_contrastive_pulls_equal_labels_together():
    torch.manual_seed(0)
    views = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    labels = torch.tensor([1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
    aligned = supervised_contrastive(views, views, torch.arange(6.0), 0.1)
    shuffled = supervised_contrastive(views, views.roll(1, 0), torch.arange(6.0), 0.1)
    assert aligned < shuffled
    # with every label distinct it is InfoNCE: the cross-entropy of the diagonal
    logits = views @ views.T / 0.1
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(6))
    assert torch.allclose(aligned, expected)
    assert supervised_contrastive(views, views, labels, 0.1) > 0


def test_supervised_contrastive_equals_the_definition_with_its_gradients():
    """Khosla et al.'s loss written out over the [n, n] mask of equal labels."""
    torch.manual_seed(1)
    anchors = torch.nn.functional.normalize(torch.randn(9, 5), dim=1).requires_grad_()
    others = torch.nn.functional.normalize(torch.randn(9, 5), dim=1).requires_grad_()
    labels = torch.tensor([1.0, 3.0, 1.0, 2.0, 3.0, 3.0, 5.0, 1.0, 2.0])
    logits = anchors @ others.T / 0.07
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]).float()
    expected = -((positive * log_prob).sum(1) / positive.sum(1)).mean()
    want = torch.autograd.grad(expected, (anchors, others))
    loss = supervised_contrastive(anchors, others, labels, 0.07)
    got = torch.autograd.grad(loss, (anchors, others))
    assert torch.allclose(loss, expected, atol=1e-5)
    assert all(torch.allclose(g, w, atol=1e-5) for g, w in zip(got, want))


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.ones(3, requires_grad=True)
    _ReverseGradient.apply(x, 0.5).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.5))


def test_omnimatch_trains_on_held_out_users_auxiliary_rows_but_not_side_users(review_root):
    config = make_config("OmniMatch", "tiny_reviews", **FAST)
    data, (train, _, _) = build_split("OmniMatch", "tiny_reviews", **FAST)
    model = OmniMatch(config, train)
    rows = model.training_rows(train)
    feat = train.inter_feat
    users, target = feat["user_id"], feat["domain"] == train.target_domain_id
    held = (train.user_role == UserRole.OVERLAP) & (train.user_split != SplitPart.TRAIN)
    side = train.user_role == UserRole.SIDE
    assert rows[held[users] & ~target].all() and rows[held[users] & ~target].any()
    assert not rows[side[users]].any()
