"""bench/paired_users.py: the paired bootstrap and the history buckets on hand-made numbers, and
the bench end to end on two tiny runs of one split (and its refusal of two different splits)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import paired_users  # noqa: E402

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def test_paired_bootstrap_is_narrow_for_a_steady_gain_and_straddles_zero_for_noise():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, 2000)
    steady = a + 0.01 + rng.normal(0, 0.001, 2000)  # every user gains about 0.01

    def bootstrap(a, b):  # (mean of b - a, its 95 % interval), as the report has them
        return (np.mean(b - a), *paired_users.interval(paired_users.bootstrap_means(a, b, 500)))

    mean, low, high = first = bootstrap(a, steady)
    assert mean == pytest.approx(0.01, abs=2e-4) and low < mean < high and high - low < 2e-4
    noisy = a + rng.normal(0, 0.3, 2000)  # no gain, users differ a lot
    _, low, high = bootstrap(a, noisy)
    assert low < 0 < high and high - low > 0.01
    assert bootstrap(a, steady) == first  # fixed seed


def test_history_buckets_cover_every_length_once():
    history = np.array([1, 2, 3, 4, 5, 9, 10, 250])
    assert paired_users.bucket_of(history).tolist() == [0, 1, 2, 2, 3, 3, 4, 4]
    labels = [paired_users.bucket_label(n) for n in range(len(paired_users.HISTORY_BUCKETS))]
    assert labels == ["1", "2", "3–4", "5–9", "≥ 10"]


def _checkpoint(model: str, **settings) -> tuple[str, dict]:
    """(the checkpoint, the test result) of a run on the tiny implicit data."""
    from recbole_music.quick_start import run_recbole_music

    config = {"state": "ERROR", **settings}
    result = run_recbole_music(model, "tiny_implicit", config_dict=config, saved=True)
    return str(Path(result["run"]["checkpoint"]).resolve()), result["test_result"]


def test_the_bench_pairs_two_runs_of_one_split_and_refuses_two_splits(tiny_data_root, tmp_path):
    pop, _ = _checkpoint("SVDTransfer", pop_weight=100.0, search_grid={})  # popularity, in effect
    knn, knn_test = _checkpoint("ItemKNNTransfer")
    other_seed, _ = _checkpoint("ItemKNNTransfer", seed=7)
    pop_other_seed, _ = _checkpoint("SVDTransfer", pop_weight=100.0, search_grid={}, seed=7)
    out = tmp_path / "paired.md"

    pairs = ["--pair", pop, knn, "--pair", pop_other_seed, other_seed]
    proc = run_bench("paired_users.py", *pairs, "--resamples", "200", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert "# ItemKNNTransfer against SVDTransfer" in text
    rows = re.findall(r"^\| tiny_implicit \((valid|test)\) \| 20% \| (\d+) \| (\d+) \|", text, re.M)
    assert [(part, seed) for part, seed, _ in rows] == [
        ("valid", "2020"), ("valid", "7"), ("test", "2020"), ("test", "7")
    ]  # fmt: skip
    assert all(int(users) > 0 for *_, users in rows)
    # the row of the mean over seeds: the mean of the seeds' differences
    diffs = [float(line.split("|")[7]) for line in text.splitlines() if "(test) | 20%" in line]
    pooled = re.search(r"^\| mean of the 2 rows above \(test\) \|[^\n]*", text, re.M).group(0)
    assert float(pooled.split("|")[7]) == pytest.approx(np.mean(diffs), abs=2e-4)
    # B's mean is the run's own test cell, as the run reported it
    test_row = re.search(r"^\| tiny_implicit \(test\) \|[^\n]*", text, re.M).group(0)
    assert float(test_row.split("|")[6]) == pytest.approx(knn_test["ndcg@20"], abs=1e-4)
    assert "## By the length of the auxiliary history (valid users" in text
    assert "## By the length of the auxiliary history (test users" in text

    refused = run_bench("paired_users.py", "--pair", knn, other_seed, "--out", str(out))
    assert refused.returncode == 2 and "not run on the same split" in refused.stderr
    assert "Traceback" not in refused.stderr
    for metric in ("auc@20", "ndcg", "ndcg@0"):  # refused before any model is loaded
        refused = run_bench(
            "paired_users.py", "--pair", knn, knn, "--metric", metric, "--out", str(out)
        )
        assert refused.returncode == 2 and "--metric" in refused.stderr, metric
