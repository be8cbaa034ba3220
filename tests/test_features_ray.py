"""Feature extraction on Ray workers (dataset_prep.features.ray_shards): a local cluster of CPU
workers, a tiny model built from config, the same tables as one process."""

from __future__ import annotations

import os
import socket
import sys

import numpy as np
import pytest
import torch
from test_features import _write_dataset
from tiny_models import save_tiny_bert

from dataset_prep.features.encoders import EncoderSpec, load_encoder
from dataset_prep.features.pipeline import RunSettings, extract_features
from dataset_prep.features.ray_shards import RayCluster, RayClusterError, RaySettings
from dataset_prep.vector_table import load_vectors

ray = pytest.importorskip("ray")
torch.set_num_threads(1)
# the dying encoders below travel to the workers by value (this module is not importable there)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TABLES = ("items", "users_aux", "users_target")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    torch.manual_seed(0)
    return save_tiny_bert(tmp_path_factory.mktemp("models") / "bert")


def _tables(folder):
    return {t: load_vectors(folder / "features", t) for t in TABLES}


def _single_process(tmp_path, bert):
    folder = _write_dataset(tmp_path / "one")
    settings = RunSettings(shard_size=2, batch_size=2, progress=False, max_bad_image_share=0.5)
    extract_features(folder.parent, "tiny", EncoderSpec(model=bert), settings=settings)
    return _tables(folder)


class _DiesOn:
    """An encoder whose process exits (as a killed worker) when it meets ``text``; only the
    first time when ``once`` (a marker file remembers it across restarts)."""

    def __init__(self, enc, text, marker, once):
        self.enc, self.text, self.marker, self.once = enc, text, marker, once

    def __getattr__(self, name):
        return getattr(self.enc, name)

    def encode_texts(self, texts):
        if any(self.text in t for t in texts) and not (self.once and os.path.exists(self.marker)):
            open(self.marker, "a").close()
            os._exit(1)
        return self.enc.encode_texts(texts)


def _dying(text, marker, once):
    return lambda spec: _DiesOn(load_encoder(spec), text, str(marker), once)


def test_cli_on_ray_workers_writes_the_single_process_tables_bit_for_bit(bert, tmp_path, capsys):
    from dataset_prep.cli import main

    expected = _single_process(tmp_path, bert)
    folder = _write_dataset(tmp_path / "ray")
    args = ["features", "--dataset", "tiny", "--data-path", str(folder.parent)]
    args += ["--encoder", bert, "--no-progress", "--shard-size", "2", "--batch-size", "2"]
    args += ["--max-bad-image-share", "0.5", "--ray", "local", "--num-workers", "2"]
    assert main(args) == 0, capsys.readouterr().err
    got = _tables(folder)
    for table in TABLES:
        assert got[table].ids == expected[table].ids
        assert np.array_equal(got[table].vectors, expected[table].vectors), table
        assert got[table].meta["fingerprint"] == expected[table].meta["fingerprint"]
        assert got[table].meta["run"]["workers"] == 2
    assert not (folder / "features" / ".work").exists()
    assert not ray.is_initialized()  # the local cluster is shut down again


def test_a_killed_worker_is_restarted_and_its_shard_embedded_again(bert, tmp_path):
    expected = _single_process(tmp_path, bert)
    folder = _write_dataset(tmp_path / "ray")
    marker = tmp_path / "died"
    settings = RunSettings(shard_size=2, batch_size=2, progress=False, max_bad_image_share=0.5)
    manifests = extract_features(
        folder.parent,
        "tiny",
        EncoderSpec(model=bert),
        tables=("items",),
        settings=settings,
        ray=RaySettings("local", num_workers=2),
        encoder_factory=_dying("item 7", marker, once=True),
    )
    assert marker.exists()  # a worker did die
    assert manifests["items"]["run"]["rows_embedded"] == 10
    got = load_vectors(folder / "features", "items")
    assert got.ids == expected["items"].ids
    assert np.array_equal(got.vectors, expected["items"].vectors)


def test_a_shard_that_kills_every_worker_stops_the_run_and_keeps_the_finished_shards(
    bert, tmp_path
):
    folder = _write_dataset(tmp_path / "ray")
    settings = RunSettings(shard_size=2, batch_size=2, progress=False, max_bad_image_share=0.5)
    with pytest.raises(RayClusterError, match=r"shard 3 \(rows i06 … i07\) failed"):
        extract_features(
            folder.parent,
            "tiny",
            EncoderSpec(model=bert),
            tables=("items",),
            settings=settings,
            ray=RaySettings("local", num_workers=1),
            encoder_factory=_dying("item 7", tmp_path / "died", once=False),
        )
    assert not (folder / "features" / "items.json").exists()  # no half-written table
    work = next((folder / "features" / ".work" / "items").iterdir())
    assert sorted(p.name for p in work.glob("shard_*.npz")) == [
        f"shard_{k:05d}.npz" for k in range(3)
    ]
    manifests = extract_features(
        folder.parent, "tiny", EncoderSpec(model=bert), tables=("items",), settings=settings
    )
    assert manifests["items"]["run"]["rows_from_cache"] == 6
    assert manifests["items"]["run"]["rows_embedded"] == 4


def test_an_unreachable_ray_head_is_a_clear_error_in_seconds(bert, tmp_path, capsys):
    from dataset_prep.cli import main

    folder = _write_dataset(tmp_path)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["features", "--dataset", "tiny", "--data-path", str(folder.parent)]
    args += ["--encoder", bert, "--no-progress", "--ray", f"127.0.0.1:{port}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--ray 127.0.0.1:{port}: no Ray head answers there" in err
    assert "Traceback" not in err
    assert not (folder / "features" / "items.json").exists()
    assert not ray.is_initialized()


def test_more_workers_than_the_cluster_holds_is_a_clear_error():
    cluster = RayCluster(RaySettings("auto", num_workers=4, gpus_per_worker=1))
    with pytest.raises(RayClusterError, match="needs 4 GPUs; the Ray cluster has 2"):
        cluster._check_resources({"CPU": 16.0, "GPU": 2.0})
    cluster._check_resources({"CPU": 4.0, "GPU": 4.0})  # fits
    with pytest.raises(RayClusterError, match="--num-workers must be >= 1"):
        RayCluster(RaySettings("local", num_workers=0))


def test_cuda_without_gpus_per_worker_is_refused(bert, tmp_path, capsys):
    from dataset_prep.cli import main

    folder = _write_dataset(tmp_path)
    args = ["features", "--dataset", "tiny", "--data-path", str(folder.parent)]
    args += ["--encoder", bert, "--device", "cuda", "--ray", "local"]
    assert main(args) == 2
    assert "--gpus-per-worker" in capsys.readouterr().err
