"""One training objective and one candidate set for every sequential model: the domain softmax,
its sampled version, RecBole's SASRec/GRU4Rec under it, and aux items masked at evaluation."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F
from sequence_fixtures import sequential_config

import recbole_music  # noqa: F401
from recbole_music.data.sequence_dataset import SequentialCrossDomainDataset
from recbole_music.evaluation.sequential_evaluator import SequentialEvaluator
from recbole_music.model.sequential_loss import (
    DomainCandidates,
    domain_cross_entropy,
    training_objective,
)
from recbole_music.quick_start import prepare_data, resolve_model, run_recbole_music

torch.set_num_threads(1)

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:pkg_resources is deprecated"),
]

TINY = {
    "hidden_size": 16,
    "embedding_size": 16,
    "inner_size": 32,
    "MAX_ITEM_LIST_LENGTH": 6,
    "epochs": 1,
    "train_batch_size": 64,
    "state": "ERROR",
    "show_progress": False,
    "hidden_dropout_prob": 0.0,
    "attn_dropout_prob": 0.0,
    "dropout_prob": 0.0,
}


def make(model_name, **overrides):
    config = sequential_config(model_name, **{**TINY, **overrides})
    train_data, valid, test = prepare_data(config, SequentialCrossDomainDataset(config))
    torch.manual_seed(0)
    model = resolve_model(model_name)(config, train_data._dataset)
    return config, model, train_data, valid, test


def first_batch(train_data):
    return next(iter(train_data))


# -- the loss itself -----------------------------------------------------------------------------
def test_full_domain_softmax_is_cross_entropy_among_the_candidates():
    torch.manual_seed(0)
    table = torch.randn(10, 4)
    states = torch.randn(3, 4)
    candidates = torch.tensor([2, 5, 7, 9])
    position = torch.full((10,), -1)
    position[candidates] = torch.arange(4)
    labels = torch.tensor([5, 9, 2])
    expected = F.cross_entropy(states @ table[candidates].T, torch.tensor([1, 3, 0]))
    got = domain_cross_entropy(states, table, labels, candidates, position, negatives=0)
    assert torch.allclose(got, expected)


def test_sampled_softmax_masks_a_draw_equal_to_the_label():
    torch.manual_seed(0)
    table = torch.randn(10, 4)
    states = torch.randn(3, 4)
    labels = torch.tensor([5, 5, 5])
    only_label = torch.tensor([5])  # every draw IS the label: masked, nothing left to beat
    position = torch.full((10,), -1)
    position[5] = 0
    loss = domain_cross_entropy(states, table, labels, only_label, position, negatives=8)
    assert torch.allclose(loss, torch.tensor(0.0), atol=1e-6)
    other = torch.tensor([5, 6])
    position[6] = 1
    assert domain_cross_entropy(states, table, labels, other, position, negatives=8) > 0


def test_candidates_per_softmax():
    is_target = torch.tensor([True, False, True, True, False])  # id 0 is padding
    domain = DomainCandidates(is_target, "domain")
    assert domain.of(True)[0].tolist() == [2, 3] and domain.of(False)[0].tolist() == [1, 4]
    every = DomainCandidates(is_target, "all")
    assert every.of(True)[0].tolist() == [1, 2, 3, 4] == every.of(False)[0].tolist()
    with pytest.raises(ValueError, match="sequential_softmax"):
        DomainCandidates(is_target, "both")


# -- RecBole's own models under it ------------------------------------------------------------
@pytest.mark.parametrize("model_name", ["SASRec", "GRU4Rec"])
def test_recbole_models_train_with_the_domain_softmax(seq_root, model_name):
    config, model, train_data, _, _ = make(model_name)
    objective = training_objective(config, model, train_data._dataset)
    assert objective.description.startswith("cross-entropy over the label's domain")
    batch = first_batch(train_data)
    loss = objective.loss(batch)
    # by hand: each example's label among the items of its own domain, a mean over examples
    is_target = train_data._dataset.target_item_mask.bool().clone()
    is_target[0] = False
    states = model.forward(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    table = model.item_embedding.weight
    terms = []
    for state, label in zip(states, batch[model.POS_ITEM_ID]):
        pool = torch.nonzero(is_target if is_target[label] else ~is_target).flatten()
        pool = pool[pool > 0]
        logits = state @ table[pool].T
        terms.append(F.cross_entropy(logits.view(1, -1), (pool == label).nonzero().view(1)))
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-5)
    # and it is not RecBole's own loss (every item, padding included, for every example)
    assert not torch.allclose(loss, model.calculate_loss(batch), atol=1e-4)


def test_a_target_label_does_not_train_against_auxiliary_items(seq_root):
    """Auxiliary items that no input sequence of the batch holds get a gradient from target
    labels under the ``all`` softmax only."""
    for softmax, untouched in (("domain", True), ("all", False)):
        config, model, train_data, _, _ = make("SASRec", sequential_softmax=softmax)
        objective = training_objective(config, model, train_data._dataset)
        batch = first_batch(train_data)
        is_target = train_data._dataset.target_item_mask.bool()
        batch = batch[torch.nonzero(is_target[batch[model.POS_ITEM_ID]]).flatten()]
        model.zero_grad()
        objective.loss(batch).backward()
        in_sequences = set(batch[model.ITEM_SEQ].unique().tolist())
        unseen_aux = [i for i in torch.nonzero(~is_target).flatten().tolist() if i > 0]
        unseen_aux = [i for i in unseen_aux if i not in in_sequences]
        assert unseen_aux, "the fixture should leave some auxiliary items out of this batch"
        grad = model.item_embedding.weight.grad[unseen_aux].abs().sum()
        assert bool(grad == 0) is untouched, softmax


def test_sampled_softmax_is_seeded_and_differs_from_the_full_one(seq_root):
    config, model, train_data, _, _ = make("GRU4Rec", sequential_negatives=5)
    objective = training_objective(config, model, train_data._dataset)
    assert objective.description.startswith("sampled softmax: the label against 5 uniform draws")
    batch = first_batch(train_data)
    torch.manual_seed(3)
    first = objective.loss(batch)
    torch.manual_seed(3)
    assert torch.equal(first, objective.loss(batch))
    full = training_objective(
        sequential_config("GRU4Rec", **TINY), model, train_data._dataset
    ).loss(batch)
    assert not torch.allclose(first, full)


def test_a_model_without_a_ce_item_table_keeps_its_own_loss_and_says_so(seq_root, caplog):
    config, model, train_data, _, _ = make(
        "GRU4Rec",
        loss_type="BPR",
        train_neg_sample_args={"distribution": "uniform", "sample_num": 1},
    )
    with caplog.at_level(logging.WARNING):
        objective = training_objective(config, model, train_data._dataset)
    assert objective.loss == model.calculate_loss
    assert "its own calculate_loss (loss_type BPR)" in objective.description
    assert "sequential_softmax and sequential_negatives do not apply" in caplog.text


def test_llmemf_reads_the_same_settings(seq_root):
    config, model, train_data, _, _ = make("LLMEMF", sequential_negatives=4)
    objective = training_objective(config, model, train_data._dataset)
    assert objective.description.startswith("sampled softmax: the label against 4 uniform draws")
    assert "u_A with weight 0.5" in objective.description
    batch = first_batch(train_data)
    torch.manual_seed(1)
    sampled = objective.loss(batch)
    model.negatives = 0
    assert not torch.allclose(sampled, objective.loss(batch))


# -- the candidates at evaluation -------------------------------------------------------------
def test_evaluation_ranks_target_items_only_for_recbole_models(seq_root):
    config, model, _, _, test = make("SASRec")
    labels = test.inter_feat[test.iid_field]
    is_target = test.target_item_mask.bool()

    def scores_favouring_aux(interaction):  # every auxiliary item above the true label
        scores = torch.zeros(len(interaction), test.item_num)
        scores[:, ~is_target] = 10.0
        scores[torch.arange(len(interaction)), interaction[test.iid_field]] = 5.0
        return scores

    model.full_sort_predict = scores_favouring_aux
    result = SequentialEvaluator(config).evaluate(model, test)
    assert len(labels) > 0 and result["hit@10"] == 1.0 and result["mrr@10"] == 1.0


def test_result_file_names_the_loss_and_the_candidates(seq_root, tmp_path):
    for model in ("SASRec", "LLMEMF"):
        run_recbole_music(
            model,
            "tiny_seq",
            config_dict=dict(TINY),
            saved=False,
            result_json=tmp_path / f"{model}.json",
        )
        run = json.loads((tmp_path / f"{model}.json").read_text())["run"]
        assert run["loss"].startswith("cross-entropy over the label's domain (16 target")
        assert run["candidates"].startswith("16 target items, the same for every model")


def test_the_sequential_trainer_trains_with_the_objective(seq_root):
    from recbole_music.trainer.sequential_trainer import SequentialCrossDomainTrainer

    config, model, train_data, _, _ = make("SASRec")
    trainer = SequentialCrossDomainTrainer(config, model)
    trainer.use_objective(train_data._dataset)
    calls = []
    wrapped = trainer.objective.loss

    def spy(interaction):
        calls.append(len(interaction))
        return wrapped(interaction)

    trainer.objective.loss = spy
    model.calculate_loss = lambda interaction: pytest.fail("RecBole's own loss was used")
    trainer._train_epoch(train_data, 0)
    assert sum(calls) == len(train_data._dataset)
