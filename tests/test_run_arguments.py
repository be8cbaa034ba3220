"""run_recbole_music.py checks every argument before anything trains; per-model settings; the
result JSON's run record; one log file per run."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

import run_recbole_music
from recbole_music import quick_start

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

FAST = "--epochs=2"


def _main(*argv: str) -> int:
    return run_recbole_music.main(list(argv))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--learning_rat=0.1"],
            "--learning_rat: no RecBole or recbole-music setting has this "
            "name; did you mean learning_rate",
        ),
        (["--epochs=abc"], "--epochs=abc: expected a whole number"),
        (["--learning_rate=abc"], "--learning_rate=abc: expected a number"),
        (["--config_files=/missing.yaml"], "config file /missing.yaml does not exist"),
        (["--model=TargetMF,Nope"], "unknown model 'Nope'"),
        (["--model-arg", "BPR:epochs=1"], "--model-arg for ['BPR'], which --model does not run"),
        (["--model-arg", "TargetMF:epochs=x"], "--model-arg TargetMF:epochs=x: expected a whole"),
    ],
)
def test_bad_arguments_stop_before_anything_trains(tiny_data_root, capsys, argv, message):
    assert _main("--model=TargetMF", "--dataset=tiny", FAST, *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err
    assert not Path("saved").exists() and not Path("log").exists()  # nothing trained


def test_a_bad_config_file_names_its_line(tiny_data_root, capsys):
    Path("bad.yaml").write_text("epochs: 2\nlearning_rate: [0.1\n")
    assert _main("--model=TargetMF", "--dataset=tiny", "--config_files=bad.yaml") == 2
    assert "config file bad.yaml:3: not valid YAML" in capsys.readouterr().err


def test_a_model_arg_sets_one_models_setting_only(tiny_data_root, capsys):
    argv = ["--model=GlobalMean,TargetMF", "--dataset=tiny", FAST, "--result_json=r.json"]
    assert _main(*argv, "--model-arg", "TargetMF:learning_rate=0.05") == 0
    payload = json.loads(Path("r.json").read_text())
    target_mf = payload["TargetMF"]["run"]["settings_changed"]
    assert target_mf["learning_rate"] == 0.05 and target_mf["epochs"] == 2
    assert "learning_rate" not in payload["GlobalMean"]["run"]["settings_changed"]
    assert payload["GlobalMean"]["run"]["settings_changed"]["epochs"] == 2
    assert "TargetMF alone: learning_rate=0.05" in capsys.readouterr().out


def test_result_json_names_times_best_epoch_and_checkpoint(tiny_data_root):
    assert _main("--model=TargetMF", "--dataset=tiny", FAST, "--result_json=r.json") == 0
    run = json.loads(Path("r.json").read_text())["run"]
    assert run["seconds"]["training"] > 0 and run["seconds"]["evaluation"] > 0
    assert run["best_epoch"] in (0, 1)
    assert Path(run["checkpoint"]).is_file() and run["checkpoint"].startswith("saved")
    mode = stat.S_IMODE(os.stat("r.json").st_mode)
    assert mode == 0o666 & ~_umask()  # as any file the user creates, not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_identical_runs_in_the_same_second_log_to_their_own_files(tiny_data_root, monkeypatch):
    import recbole.utils.logger as recbole_logger
    from conftest import make_config

    monkeypatch.setattr(recbole_logger, "get_local_time", lambda: "Dec-01-2026_12-00-00")
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a fresh process (no pytest)
    config = make_config("TargetMF", state="INFO")
    files = []
    for _ in range(2):
        quick_start._init_run_logger(config)
        (handler,) = [
            h for h in quick_start._run_log_handlers if isinstance(h, logging.FileHandler)
        ]
        files.append(handler.baseFilename)
    assert files[0] != files[1] and files[1].endswith("-2.log")
    assert all(os.path.isfile(f) for f in files)
    for handler in quick_start._run_log_handlers:
        logging.getLogger().removeHandler(handler)
        handler.close()


def test_a_run_started_beside_another_does_not_die_creating_the_log_folders(
    tiny_data_root, monkeypatch
):
    """RecBole checks for ./log/<model> and then creates it; a run started at the same moment
    can create it in between. Simulate that other run inside RecBole's check-then-create."""
    import recbole.utils.logger as recbole_logger
    from conftest import make_config

    def check_then_create_losing_the_race(path):
        if not os.path.exists(path):
            os.makedirs(path)  # the other run gets there first ...
            os.makedirs(path)  # ... and this one's makedirs fails

    monkeypatch.setattr(recbole_logger, "ensure_dir", check_then_create_losing_the_race)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    quick_start._init_run_logger(make_config("TargetMF", state="INFO"))
    assert os.path.isdir(os.path.join("log", "TargetMF"))
    assert os.path.isdir(make_config("TargetMF")["checkpoint_dir"])  # the trainer's, likewise
    for handler in quick_start._run_log_handlers:
        logging.getLogger().removeHandler(handler)
        handler.close()


def test_the_plugins_own_config_files_are_found_from_any_working_directory(tmp_path, monkeypatch):
    from run_recbole_music import PLUGIN_ROOT, config_file_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("epochs: 1\n")
    paths = config_file_paths("properties/model/MuSiC-paper.yaml mine.yaml /abs/missing.yaml")
    assert paths == [
        str(PLUGIN_ROOT / "properties/model/MuSiC-paper.yaml"),
        "mine.yaml",  # the working directory's own file comes first
        "/abs/missing.yaml",  # left for the check that names it
    ]
    assert config_file_paths(None) == []
