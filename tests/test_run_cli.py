"""run_recbole_music.py end to end on tiny data: result JSON, comparison table, same split for
every model, determinism, errors, the GENERATED demo, and the checkpoint round trip."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_config

import run_recbole_music
from recbole_music import quick_start

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

REPO = Path(__file__).resolve().parent.parent
RATING_KEYS = {"mae", "rmse", "ratedndcg@20"}
RANKING_KEYS = {"ndcg@20", "recall@20", "hit@20"}
FAST = "--epochs=2"


@pytest.fixture
def splits(monkeypatch):
    """Records (model, frozenset of test user tokens) of every run's cold-start split."""
    record: list[tuple[str, frozenset[str]]] = []
    original = quick_start.prepare_data

    def spy(config, dataset):
        train, valid, test = original(config, dataset)
        users = test.inter_feat[dataset.uid_field].unique().numpy()
        record.append((config["model"], frozenset(dataset.id2token(dataset.uid_field, users))))
        return train, valid, test

    monkeypatch.setattr(quick_start, "prepare_data", spy)
    return record


def _main(*argv: str) -> int:
    return run_recbole_music.main(list(argv))


def test_one_model_writes_result_json(tiny_data_root, splits):
    assert _main("--model=TargetMF", "--dataset=tiny", FAST, "--result_json=out/r.json") == 0
    payload = json.loads(Path("out/r.json").read_text())
    assert set(payload) == {"valid", "test", "run"}
    assert set(payload["test"]) == RATING_KEYS | RANKING_KEYS
    assert set(payload["valid"]) == RATING_KEYS | RANKING_KEYS
    assert payload["run"]["model"] == "TargetMF"
    assert payload["run"]["generated_data"] is False
    assert payload["run"]["model_selection"] == "best epoch on the validation users"
    assert "MuSiC" in payload["run"]["conventions"]["ratedndcg@20"]
    assert len(splits) == 1 and len(splits[0][1]) == 8  # 20% of 40 overlapping users
    assert not list(Path("out").glob(".*tmp"))  # written atomically, nothing left behind


def test_several_models_print_a_table_on_one_split(tiny_data_root, splits, capsys):
    argv = ["--model=GlobalMean, TargetMF,BPR", "--dataset=tiny", FAST, "--result_json=all.json"]
    assert _main(*argv) == 0
    out = capsys.readouterr().out
    assert "test metrics (cold-start users)" in out
    header = next(line for line in out.splitlines() if line.startswith("model"))
    # the first model's keys, then the keys the next ones add, in order
    assert header.split() == [
        "model",
        "mae",
        "rmse",
        "ratedndcg@20",
        "ndcg@20",
        "recall@20",
        "hit@20",
    ]
    rows = {
        line.split()[0]: line.split()[1:]
        for line in out.splitlines()
        if line.split() and line.split()[0] in ("GlobalMean", "TargetMF", "BPR")
    }
    assert set(rows) == {"GlobalMean", "TargetMF", "BPR"}
    assert rows["GlobalMean"][2:] == ["n/a"] * 4  # no ranking, no rated-items NDCG
    assert rows["BPR"][:2] == ["n/a", "n/a"]  # a click model gets no MAE/RMSE
    assert "n/a" not in rows["TargetMF"]
    # every model on the same cold-start test users
    assert [model for model, _ in splits] == ["GlobalMean", "TargetMF", "BPR"]
    assert len({users for _, users in splits}) == 1
    payload = json.loads(Path("all.json").read_text())
    assert set(payload) == {"GlobalMean", "TargetMF", "BPR"}
    assert set(payload["BPR"]["test"]) == {"ratedndcg@20"} | RANKING_KEYS
    assert set(payload["GlobalMean"]["test"]) == {"mae", "rmse"}
    assert payload["BPR"]["run"]["valid_metric"] == "NDCG@20"  # BPR cannot select on RMSE


def test_same_seed_same_json_other_seed_other_split(tiny_data_root, splits):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        argv = ["--model=TargetMF", "--dataset=tiny", FAST, f"--seed={seed}"]
        assert _main(*argv, f"--result_json={name}.json") == 0
    a, b, c = (json.loads(Path(f"{name}.json").read_text()) for name in "abc")
    for payload in (a, b, c):  # what may differ between identical runs: their time and file
        del payload["run"]["seconds"], payload["run"]["checkpoint"]
    assert a == b
    assert a != c
    assert splits[0][1] == splits[1][1] != splits[2][1]
    assert c["run"]["split_seed"] == 4


def test_cold_ratio_changes_the_number_of_test_users(tiny_data_root, splits):
    argv = ["--model=ItemMean", "--dataset=tiny", "--cold_ratio=0.5", "--result_json=r.json"]
    assert _main(*argv) == 0
    assert len(splits[0][1]) == 20
    assert json.loads(Path("r.json").read_text())["run"]["cold_ratio"] == 0.5


def test_no_valid_users_selects_the_last_epoch(tiny_data_root):
    argv = ["--model=TargetMF", "--dataset=tiny", FAST, "--valid_ratio=0", "--result_json=r.json"]
    assert _main(*argv) == 0
    payload = json.loads(Path("r.json").read_text())
    assert payload["valid"] == {}
    assert set(payload["test"]) == RATING_KEYS | RANKING_KEYS
    assert payload["run"]["model_selection"] == "last epoch (no validation users)"


def test_implicit_data_reports_ranking_metrics_only(tiny_data_root):
    argv = ["--model=TargetMF", "--dataset=tiny_implicit", FAST, "--result_json=r.json"]
    assert _main(*argv) == 0
    payload = json.loads(Path("r.json").read_text())
    assert set(payload["test"]) == RANKING_KEYS


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model=NoSuchModel", "-d", "tiny"], "unknown model 'NoSuchModel'"),
        (["--model=TargetMF", "-d", "tiny", "--cold_ratio=1.5"], "cold_ratio must be in (0, 1)"),
        (["--model=GlobalMean", "-d", "tiny_implicit"], "use ItemMean (popularity)"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tiny_data_root, capsys, argv, message):
    assert _main(*argv, FAST) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_cli_process_missing_dataset_exits_2_naming_the_file(tiny_data_root):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_recbole_music.py"),
            "--model=TargetMF",
            "--dataset=nodata",
            FAST,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no data for dataset 'nodata'" in proc.stderr
    assert str(Path("dataset") / "nodata" / "nodata.inter") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_process_runs_two_models_and_prints_the_table(tiny_data_root):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_recbole_music.py"),
            "-m",
            "GlobalMean,ItemMean",
            "-d",
            "tiny",
            "--result_json=both.json",
            "--torch_threads=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout[proc.stdout.index("test metrics (cold-start users)") :]
    lines = [line.split() for line in table.splitlines() if line.strip()]
    assert lines[1][:3] == ["model", "mae", "rmse"]
    assert [row[0] for row in lines[3:5]] == ["GlobalMean", "ItemMean"]
    # RecBole's logger reached the log file, not the (quiet) console
    assert "cold-start split" not in proc.stdout + proc.stderr
    assert any("cold-start split" in log.read_text() for log in Path("log").rglob("*.log"))
    payload = json.loads(Path("both.json").read_text())
    assert set(payload) == {"GlobalMean", "ItemMean"}
    assert payload["ItemMean"]["test"]["mae"] != payload["GlobalMean"]["test"]["mae"]
    assert list(Path("log").rglob("*.log"))  # RecBole's log files went to the working dir


# -- the GENERATED demo ------------------------------------------------------------------------
DEMO_SCALE = 0.05


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    from dataset_prep.demo_build import build_demo

    root = tmp_path_factory.mktemp("demo_data")
    build_demo(root, seed=0, scale=DEMO_SCALE, show_progress=False)
    return root


def test_demo_run_says_generated_and_reports_metrics(tiny_data_root, demo_root, caplog):
    argv = [
        "--model=GlobalMean",
        "--dataset=movie_music_demo",
        f"--data_path={demo_root}",
        "--result_json=demo.json",
    ]
    assert _main(*argv) == 0
    assert "GENERATED" in caplog.text
    payload = json.loads(Path("demo.json").read_text())
    assert payload["run"]["generated_data"] is True
    assert set(payload["test"]) == {"mae", "rmse"}
    assert 0.0 < payload["test"]["mae"] < payload["test"]["rmse"] < 3.0


def test_music_runs_on_the_demo_with_multimodal_features(tiny_data_root, demo_root, caplog):
    argv = [
        "--model=MuSiC",
        "--dataset=movie_music_demo",
        f"--data_path={demo_root}",
        "--epochs=2",
        "--stage1_epochs=1",
        "--result_json=music.json",
    ]
    with caplog.at_level(logging.INFO):
        assert _main(*argv) == 0
    assert "feature_source=multimodal" in caplog.text
    payload = json.loads(Path("music.json").read_text())
    assert {"mae", "rmse", "ratedndcg@20", "ndcg@20"} <= set(payload["test"])


def test_demo_is_built_on_first_use(tmp_path, monkeypatch):
    import dataset_prep.demo_build as demo_build

    real_build = demo_build.build_demo

    def small_build(out_root, **kwargs):  # the real builder, at a test-sized scale
        return real_build(out_root, **{**kwargs, "scale": DEMO_SCALE})

    monkeypatch.setattr(demo_build, "build_demo", small_build)
    folder = quick_start.ensure_dataset(quick_start.DEMO_DATASET, tmp_path / "data")
    assert (folder / "movie_music_demo.inter").is_file()
    assert quick_start.read_build_info(folder)["generated"] is True


# -- checkpoints ---------------------------------------------------------------------------------


def test_checkpoint_round_trip_reproduces_the_test_result(tiny_data_root):
    from recbole.utils import init_seed

    from recbole_music.data.dataset import CrossDomainDataset
    from recbole_music.model.target_mf import TargetMF
    from recbole_music.trainer.cold_start_trainer import CrossDomainTrainer

    result = quick_start.run_recbole_music("TargetMF", "tiny", config_dict={"epochs": 3})
    (checkpoint,) = Path("saved").glob("TargetMF-*.pth")

    config = make_config("TargetMF", epochs=3)
    init_seed(config["seed"] + 1, True)  # a fresh model with other initial weights
    data = CrossDomainDataset(config)
    train, _, test = data.build()
    trainer = CrossDomainTrainer(config, TargetMF(config, train))
    fresh = trainer.evaluate(test, load_best_model=False)
    assert fresh != result["test_result"]
    loaded = trainer.evaluate(test, load_best_model=True, model_file=str(checkpoint))
    assert dict(loaded) == result["test_result"]
    # it holds no pickled objects: plain torch.load (weights_only=True) reads it
    assert torch.load(checkpoint)["config"]["model"] == "TargetMF"


def test_dual_cold_start_runs_and_each_result_names_what_scores_unseen_items(
    tiny_data_root, caplog
):
    from test_music_features import _write_item_vectors

    _write_item_vectors(tiny_data_root, "tiny_implicit")
    argv = ["--dataset=tiny_implicit", FAST, "--stage1_epochs=1", "--cold_item_ratio=0.2"]
    with caplog.at_level(logging.INFO):
        assert _main("--model=MuSiC", *argv, "--result_json=music.json") == 0
        assert _main("--model=BPR", *argv, "--result_json=bpr.json") == 0
        mapped = ["--cold_item_vectors=content", "--result_json=mapped.json"]
        assert _main("--model=MuSiC", *argv, *mapped) == 0
    mapped = json.loads(Path("mapped.json").read_text())
    assert mapped["run"]["unseen_items"].startswith(
        "its interaction vector mapped from its content"
    )
    music = json.loads(Path("music.json").read_text())
    bpr = json.loads(Path("bpr.json").read_text())
    assert music["run"]["cold_item_ratio"] == 0.2
    assert music["run"]["unseen_items"].startswith("the evaluator's fallback")
    assert "dual cold-start, implicit feedback -> feature_source=interactions" in caplog.text
    assert bpr["run"]["unseen_items"].startswith("the evaluator's fallback")
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "BPR: items unseen in training are scored from the evaluator" in r.getMessage()
        for r in warned
    )
    assert music["test"]["ndcg@20"] >= 0 and bpr["test"]["ndcg@20"] >= 0
    plain = ["--model=BPR", "--dataset=tiny_implicit", FAST, "--result_json=plain.json"]
    assert _main(*plain) == 0
    assert json.loads(Path("plain.json").read_text())["run"]["unseen_items"] is None
