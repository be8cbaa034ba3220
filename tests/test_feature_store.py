import numpy as np
import pytest
import torch
from conftest import make_config

from dataset_prep.vector_table import load_vectors, save_vectors
from recbole_music.data.dataset import CrossDomainDataset
from recbole_music.data.feature_store import align_to_dataset


def test_round_trip_is_memory_mapped_and_keeps_meta(tmp_path):
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3)
    save_vectors(
        tmp_path, "items", ["a", "b", "c", "d"], vectors, {"model": "tiny", "pooling": "mean"}
    )
    table = load_vectors(tmp_path, "items")
    assert isinstance(table.vectors, np.memmap)
    assert table.ids == ["a", "b", "c", "d"] and table.dim == 3
    np.testing.assert_array_equal(table.vectors, vectors)
    assert table.meta["model"] == "tiny" and table.meta["rows"] == 4


def test_table_without_manifest_is_never_read(tmp_path):
    save_vectors(tmp_path, "items", ["a"], np.ones((1, 2)))
    (tmp_path / "items.json").unlink()  # as if the writer died before the manifest
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_vectors(tmp_path, "items")


def test_mismatched_files_and_bad_vectors_are_refused(tmp_path):
    save_vectors(tmp_path, "items", ["a", "b"], np.ones((2, 2)))
    (tmp_path / "items.ids").write_text("a\n")
    with pytest.raises(ValueError, match="does not match its manifest"):
        load_vectors(tmp_path, "items")
    with pytest.raises(ValueError, match="NaN"):
        save_vectors(tmp_path, "bad", ["a", "b"], np.array([[1.0, 2.0], [np.nan, 0.0]]))
    with pytest.raises(ValueError, match="2 ids"):
        save_vectors(tmp_path, "bad", ["a", "b"], np.ones((3, 2)))


def test_align_to_dataset_follows_remapped_ids(tiny_data_root):
    dataset = CrossDomainDataset(make_config("TargetMF", "tiny", state="ERROR"))
    tokens = list(dataset.field2id_token["item_id"][1:])
    # a table in another order, one unknown id, one dataset item without a vector
    table_ids = ["unknown-item"] + tokens[::-1][:-1]
    vectors = np.stack([np.full(2, hash(t) % 97, dtype=np.float32) for t in table_ids])
    save_vectors(tiny_data_root / "tiny" / "features", "items", table_ids, vectors)
    aligned, mask = align_to_dataset(
        load_vectors(tiny_data_root / "tiny" / "features", "items"), dataset, "item_id"
    )
    assert aligned.shape == (dataset.item_num, 2)
    assert not mask[0] and not mask[dataset.token2id("item_id", tokens[0])]
    for token in tokens[1:]:
        internal = dataset.token2id("item_id", token)
        assert mask[internal]
        assert aligned[internal, 0].item() == hash(token) % 97


def test_dataset_load_features_reads_its_features_folder(tiny_data_root):
    dataset = CrossDomainDataset(make_config("TargetMF", "tiny", state="ERROR"))
    users = list(dataset.field2id_token["user_id"][1:])
    vectors = np.arange(len(users) * 3, dtype=np.float32).reshape(len(users), 3)
    save_vectors(tiny_data_root / "tiny" / "features", "users_aux", users, vectors)
    aligned, mask = dataset.load_features("users_aux", "user_id")
    assert mask[1:].all() and not mask[0]
    internal = dataset.token2id("user_id", users[5])
    assert aligned[internal].tolist() == vectors[5].tolist()


def test_a_table_that_would_not_fit_in_memory_stops_before_allocating(tiny_data_root, monkeypatch):
    import recbole_music.data.feature_store as store

    dataset = CrossDomainDataset(make_config("TargetMF", "tiny", state="ERROR"))
    tokens = list(dataset.field2id_token["item_id"][1:])
    vectors = np.ones((len(tokens), 4096), dtype=np.float32)
    save_vectors(tiny_data_root / "tiny" / "features", "items", tokens, vectors)
    need = dataset.item_num * 4096 * 4
    monkeypatch.setattr(store, "available_memory_bytes", lambda: need)  # 80 % of it is too little
    zeros, allocated = store.torch.zeros, []
    monkeypatch.setattr(store.torch, "zeros", lambda *a, **k: allocated.append(a))
    with pytest.raises(store.TableTooLargeError, match=r"'items' \(\d+ rows × 4,096 float32\)"):
        dataset.load_features("items", "item_id")
    assert allocated == []
    assert issubclass(store.TableTooLargeError, ValueError)  # the CLI's exit code 2
    monkeypatch.setattr(store.torch, "zeros", zeros)
    # float16 needs half: it fits where float32 did not
    half, _ = dataset.load_features("items", "item_id", torch.float16)
    assert half.dtype == torch.float16 and half.shape == (dataset.item_num, 4096)
    monkeypatch.setattr(store, "available_memory_bytes", lambda: 2 * need)
    aligned, _ = dataset.load_features("items", "item_id")
    assert aligned.shape == (dataset.item_num, 4096) and torch.equal(aligned, half.float())
