"""LLMEMF and the cross-domain sequential data on tiny data: order, leave-last-out split, bad
input, shapes, masking of padding, the cross-domain branch, features, ablations, end to end."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction
from sequence_fixtures import sequential_config

import recbole_music  # noqa: F401
from dataset_prep.vector_table import save_vectors
from recbole_music.data.cold_start_split import split_overlapping_users
from recbole_music.data.dataset import SplitPart
from recbole_music.data.sequence_dataset import (
    SequentialCrossDomainDataset,
    domain_subsequences,
)
from recbole_music.model.llmemf import LLMEMF
from recbole_music.quick_start import prepare_data, run_recbole_music

torch.set_num_threads(1)

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:pkg_resources is deprecated"),
]

TINY = {
    "hidden_size": 16,
    "inner_size": 32,
    "n_heads": 2,
    "MAX_ITEM_LIST_LENGTH": 6,
    "epochs": 1,
    "train_batch_size": 64,
    "state": "ERROR",
    "show_progress": False,
    "hidden_dropout_prob": 0.0,
    "attn_dropout_prob": 0.0,
}


def _split_seed_holding(user: str, part: str = "test", cold_ratio=0.2, valid_ratio=0.1) -> int:
    overlap = sorted([f"o{u:03d}" for u in range(30)] + ["first_target"])
    for seed in range(200):
        split = split_overlapping_users(overlap, cold_ratio, valid_ratio, seed)
        if user in getattr(split, part):
            return seed
    raise AssertionError("no seed")


def build(**overrides):
    config = sequential_config("LLMEMF", **{**TINY, **overrides})
    data = SequentialCrossDomainDataset(config)
    return config, data, data.build()


def make_model(**overrides):
    config = sequential_config("LLMEMF", **{**TINY, **overrides})
    data = SequentialCrossDomainDataset(config)
    train_data, valid, test = prepare_data(config, data)
    torch.manual_seed(0)
    model = LLMEMF(config, train_data._dataset)
    model.eval()
    return config, model, train_data, valid, test


def _rows(dataset, field):
    return dataset.inter_feat[field]


# -- data: order and split -------------------------------------------------------------------
def test_sequences_follow_timestamps_not_file_order(seq_root):
    _, data, _ = build()
    items, domains = data.user_sequence("first_target")
    assert items == ["t001", "a000", "a001", "a002"]
    assert domains == ["target", "aux", "aux", "aux"]
    raw = [
        line.split("\t")
        for line in (seq_root / "tiny_seq" / "tiny_seq.inter").read_text().splitlines()[1:]
    ]
    mine = sorted((float(r[2]), r[1]) for r in raw if r[0] == "o000")
    assert data.user_sequence("o000")[0] == [item for _, item in mine]


def test_leave_last_out_for_held_out_overlapping_users(seq_root):
    config, data, (train, valid, test) = build(MAX_ITEM_LIST_LENGTH=4)
    iid = data.iid_field
    for split_set, part in ((valid, SplitPart.VALID), (test, SplitPart.TEST)):
        users = _rows(split_set, data.uid_field)
        assert (data.user_split[users] == part).all()
        assert len(torch.unique(users)) == len(users)  # one example per user
        for row in range(len(split_set)):
            token = data.id2token(data.uid_field, int(users[row]))
            items, domains = data.user_sequence(token)
            last = max(i for i, d in enumerate(domains) if d == "target")
            assert data.id2token(iid, int(_rows(split_set, iid)[row])) == items[last]
            n = int(_rows(split_set, "item_length")[row])
            assert n == min(last, 4)
            seq = _rows(split_set, "item_id_list")[row]
            assert list(data.id2token(iid, seq[:n])) == items[last - n : last]
            assert (seq[n:] == 0).all()
    # held-out users are not trained on (C2DSR-style) ...
    held_out = torch.cat([_rows(valid, data.uid_field), _rows(test, data.uid_field)])
    assert not np.isin(_rows(train, data.uid_field).numpy(), held_out.numpy()).any()
    # ... unless asked: then only the items before their label
    _, data2, (train2, _, test2) = build(MAX_ITEM_LIST_LENGTH=4, heldout_prefix_in_train=True)
    user = int(_rows(test2, data2.uid_field)[0])
    label_time = float(_rows(test2, "timestamp")[0])
    mine = _rows(train2, data2.uid_field) == user
    assert mine.any() and (_rows(train2, "timestamp")[mine] < label_time).all()


def test_training_examples_cover_every_next_item_of_training_users(seq_root):
    _, data, (train, _, _) = build()
    users = _rows(train, data.uid_field)
    o = data.token2id(data.uid_field, "o000")
    if data.user_split[o] == SplitPart.TRAIN:
        items, _ = data.user_sequence("o000")
        labels = data.id2token(data.iid_field, _rows(train, data.iid_field)[users == o])
        assert list(labels) == items[1:]  # positions 2..n, both domains


def test_short_sequences_and_users_without_target_items(seq_root, caplog):
    with caplog.at_level(logging.INFO):
        _, data, (train, _, _) = build()
    users = _rows(train, data.uid_field)
    assert not (users == data.token2id(data.uid_field, "short")).any()
    aux_only = torch.tensor(data.token2id(data.uid_field, [f"x{u:03d}" for u in range(6)]))
    rows = np.isin(users.numpy(), aux_only.numpy())
    assert rows.any()
    assert not data.target_item_mask[_rows(train, data.iid_field)[torch.from_numpy(rows)]].any()
    text = caplog.text
    assert "1 training user(s) have fewer than 2 interactions" in text
    assert "6 training user(s) have no target-domain item" in text


def test_held_out_user_with_nothing_before_the_label_is_dropped(seq_root, caplog):
    seed = _split_seed_holding("first_target")
    with caplog.at_level(logging.WARNING):
        _, data, (_, _, test) = build(split_seed=seed)
    uid = data.token2id(data.uid_field, "first_target")
    assert data.user_split[uid] == SplitPart.TEST
    assert not (_rows(test, data.uid_field) == uid).any()
    assert len(test) == int((data.user_split == SplitPart.TEST).sum()) - 1
    assert "1 test user(s) dropped" in caplog.text


def test_unknown_training_role_is_an_error(seq_root):
    with pytest.raises(ValueError, match="seq_train_roles"):
        build(seq_train_roles=["overlap", "nobody"])


def test_domain_subsequences_keep_order_and_ignore_padding_slots():
    is_target = torch.tensor([False, True, True, False, False])  # 0 pad, 1-2 target, 3-4 aux
    seq = torch.tensor([[3, 1, 4, 2, 9 % 5], [1, 2, 0, 0, 0], [3, 4, 1, 4, 3]])
    length = torch.tensor([4, 2, 0])  # row 2: all padding, though its slots hold ids
    t_seq, t_len, a_seq, a_len = domain_subsequences(seq, length, is_target)
    assert t_seq.tolist() == [[1, 2, 0, 0, 0], [1, 2, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert a_seq.tolist() == [[3, 4, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert t_len.tolist() == [2, 2, 0] and a_len.tolist() == [2, 0, 0]


# -- model -----------------------------------------------------------------------------------
def test_shapes_and_scores_only_target_items(seq_root):
    _, model, train_data, _, test = make_model()
    batch = test.inter_feat[torch.arange(len(test))]
    scores = model.full_sort_predict(batch)
    assert scores.shape == (len(test), model.n_items)
    target = model.is_target_item
    assert torch.isfinite(scores[:, target]).all()
    assert torch.isinf(scores[:, ~target]).all()  # auxiliary items and padding
    assert model.predict(batch).shape == (len(test),)
    assert torch.isfinite(model.full_sort_predict_aux(batch)[:, model.aux_items]).all()
    model.train()
    train_batch = next(iter(train_data))
    loss = model.calculate_loss(train_batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()


def test_padding_is_masked_in_attention(seq_root):
    _, model, _, _, test = make_model(MAX_ITEM_LIST_LENGTH=10)
    batch = test.inter_feat[torch.arange(len(test))]
    before = model.full_sort_predict(batch)
    garbage = batch["item_id_list"].clone()
    n = batch["item_length"]
    pad = torch.arange(garbage.shape[1]).view(1, -1) >= n.view(-1, 1)
    garbage[pad] = torch.randint(1, model.n_items, (int(pad.sum()),))
    assert pad.any()
    batch.update(Interaction({"item_id_list": garbage}))
    assert torch.allclose(model.full_sort_predict(batch), before, atol=1e-5, equal_nan=True)


def test_attention_blocks_ignore_whatever_sits_in_padded_positions():
    from recbole_music.model.llmemf.attention import CrossDomainAttention, SequenceEncoder

    torch.manual_seed(0)
    encoder = SequenceEncoder(
        5,
        8,
        n_layers=1,
        n_heads=2,
        inner_size=16,
        hidden_dropout=0.0,
        attn_dropout=0.0,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
    ).eval()
    cross = CrossDomainAttention(
        8, n_heads=2, inner_size=16, hidden_dropout=0.0, attn_dropout=0.0, layer_norm_eps=1e-12
    ).eval()
    x = torch.randn(3, 5, 8)
    lengths = torch.tensor([2, 5, 0])
    noisy = x.clone()
    noisy[0, 2:] = 100 * torch.randn(3, 8)
    noisy[2] = 100 * torch.randn(5, 8)
    query = torch.randn(3, 8)
    with torch.no_grad():
        states, last = encoder(x, lengths)
        states2, last2 = encoder(noisy, lengths)
        assert torch.allclose(last, last2, atol=1e-5)
        assert torch.allclose(states[0, :2], states2[0, :2], atol=1e-5)
        assert torch.equal(last[2], encoder.empty_state)  # an empty sequence: the learned state
        out = cross(query, x, lengths)
        assert torch.allclose(out, cross(query, noisy, lengths), atol=1e-5)
        assert torch.isfinite(out).all()  # row 2 attends only to the null key: no NaN


def test_cross_domain_branch_changes_predictions(seq_root):
    def scores(model, seq):
        inter = Interaction({"item_id_list": seq, "item_length": torch.tensor([5])})
        return model.full_sort_predict(inter)[:, model.target_items]

    for use_cross in (True, False):
        _, model, _, _, _ = make_model(use_cross_domain=use_cross)
        t, a = model.target_items, model.aux_items
        seq = torch.tensor([[a[0], t[0], a[1], t[1], a[2], 0]])
        other = torch.tensor([[a[5], t[0], a[6], t[1], a[7], 0]])  # other auxiliary items
        changed = not torch.allclose(scores(model, seq), scores(model, other))
        assert changed == use_cross
        assert hasattr(model, "merged_encoder") == use_cross


def test_sequences_without_one_domain_are_scored(seq_root):
    _, model, _, _, _ = make_model()
    t, a = model.target_items, model.aux_items
    seq = torch.tensor([[a[0], a[1], 0, 0, 0, 0], [t[0], t[1], 0, 0, 0, 0]])
    inter = Interaction({"item_id_list": seq, "item_length": torch.tensor([2, 2])})
    assert torch.isfinite(model.full_sort_predict(inter)[:, t]).all()


def test_aux_loss_switch(seq_root):
    _, model, train_data, _, _ = make_model(aux_loss_weight=0.0)
    batch = next(iter(train_data))
    aux_only = batch[~model.is_target_item[batch["item_id"]]]
    loss = model.calculate_loss(aux_only)
    assert loss.item() == 0.0
    loss.backward()  # a batch without target labels still backpropagates (zero gradient)
    _, model2, _, _, _ = make_model(aux_loss_weight=1.0)
    assert model2.calculate_loss(aux_only).item() > 0


def _write_tables(folder, items_text, items_image, dim=12):
    rng = np.random.default_rng(0)
    save_vectors(
        folder / "features",
        "item_text_raw",
        items_text,
        rng.normal(size=(len(items_text), dim)),
        {"model": "test"},
    )
    save_vectors(
        folder / "features",
        "item_text_llm",
        items_text,
        rng.normal(size=(len(items_text), dim)),
        {"model": "test"},
    )
    save_vectors(
        folder / "features",
        "item_image",
        items_image,
        rng.normal(size=(len(items_image), 8)),
        {"model": "test"},
    )


def test_item_features_and_ablation_switches(seq_root, caplog):
    items = [f"a{i:03d}" for i in range(20)] + [f"t{i:03d}" for i in range(16)]
    _write_tables(seq_root / "tiny_seq", items[:-3], items[::2])
    with caplog.at_level(logging.WARNING):
        _, model, _, _, _ = make_model()
    assert model.items.names == ["image", "text"]
    assert model.feature_report["text"].startswith("item_text_llm")
    assert model.feature_report["text_coverage"] == "33/36"
    assert "3 of 36 items have no text vector" in caplog.text
    ids = model.items.id_embedding.weight
    table = model.items()
    without = torch.tensor(
        [
            model.items.text_mask[i] == 0 and model.items.image_mask[i] == 0
            for i in range(model.n_items)
        ]
    )
    assert torch.allclose(table[without], ids[without])  # no vector: the ID embedding alone

    _, raw, _, _, _ = make_model(use_llm_text=False, use_image=False)
    assert raw.items.names == ["text"] and raw.feature_report["text"].startswith("item_text_raw")
    assert raw.feature_report["image"].startswith("off")
    _, ids_only, _, _, _ = make_model(use_text=False, use_image=False)
    assert ids_only.items.names == []


def test_missing_tables_fall_back_visibly(seq_root, caplog):
    items = [f"a{i:03d}" for i in range(20)] + [f"t{i:03d}" for i in range(16)]
    save_vectors(
        seq_root / "tiny_seq" / "features",
        "item_text_raw",
        items,
        np.ones((len(items), 4)),
        {"model": "test"},
    )
    with caplog.at_level(logging.WARNING):
        _, model, _, _, _ = make_model()
    assert model.feature_report["text"].startswith("item_text_raw")
    assert "w/o LLM enrichment" in caplog.text and "w/o image" in caplog.text


def test_without_images_and_enrichment_the_ablations_are_the_full_model(seq_root):
    """What bench/results/llmemf_food_kitchen.md states: with only raw-text vectors (no LLM, no
    CLIP images), "w/o image" and "w/o LLM enrichment" build the very same model."""
    items = [f"a{i:03d}" for i in range(20)] + [f"t{i:03d}" for i in range(16)]
    save_vectors(
        seq_root / "tiny_seq" / "features",
        "item_text_raw",
        items,
        np.random.default_rng(0).normal(size=(len(items), 6)),
        {"model": "test"},
    )
    outputs = []
    for switches in ({}, {"use_image": False}, {"use_llm_text": False}):
        _, model, _, _, test = make_model(**switches)
        outputs.append(model.full_sort_predict(test.inter_feat[torch.arange(len(test))]))
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


# -- end to end ------------------------------------------------------------------------------
def test_runs_beside_sasrec_and_gru4rec_on_the_same_split(seq_root, tmp_path):
    results = {}
    for model in ("LLMEMF", "SASRec", "GRU4Rec"):
        overrides = {
            "epochs": 1,
            "state": "ERROR",
            "MAX_ITEM_LIST_LENGTH": 6,
            "hidden_size": 16,
            "inner_size": 32,
            "embedding_size": 16,
        }
        results[model] = run_recbole_music(
            model,
            "tiny_seq",
            config_dict=overrides,
            saved=False,
            result_json=tmp_path / f"{model}.json",
        )
    for result in results.values():
        assert {"hit@10", "ndcg@10", "mrr@10"} <= set(result["test_result"])
        assert "leave-last-out" in result["run"]["protocol"]
    import json

    saved = json.loads((tmp_path / "LLMEMF.json").read_text())
    assert saved["run"]["conventions"]["hit@10"].startswith("next target item")
    from recbole_music.quick_start import format_comparison_table

    table = format_comparison_table(results)
    assert table.startswith("test metrics (held-out users' last target item)")
    assert "SASRec" in table and "GRU4Rec" in table


def test_registered_as_a_sequential_recbole_model():
    import recbole.data.dataset
    from recbole.utils import ModelType, get_model, get_trainer

    from recbole_music.trainer.sequential_trainer import SequentialEvaluationMixin

    assert get_model("LLMEMF") is LLMEMF
    assert "recbole.model.sequential_recommender.llmemf" in sys.modules
    assert recbole.data.dataset.LLMEMFDataset is SequentialCrossDomainDataset
    assert issubclass(get_trainer(ModelType.SEQUENTIAL, "LLMEMF"), SequentialEvaluationMixin)


def test_command_line(seq_root):
    from run_recbole_music import main

    assert (
        main(
            [
                "--model=LLMEMF",
                "--dataset=tiny_seq",
                "--epochs=1",
                "--hidden_size=16",
                "--inner_size=32",
                "--state=ERROR",
            ]
        )
        == 0
    )
