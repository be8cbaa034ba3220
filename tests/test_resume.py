"""``resume_dir``: a run interrupted mid-training continues where it stopped, with the numbers of
an uninterrupted run; another run's settings never pick up its state; bad input is refused."""

from __future__ import annotations

import logging

import pytest
import torch

import recbole_music  # noqa: F401  (registers the plugin)
import run_recbole_music
from recbole_music.checkpoint import CheckpointError, read_checkpoint
from recbole_music.quick_start import run_recbole_music as run
from recbole_music.trainer.resume import TrainingResume

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger", "tiny_data_root"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

# long enough that validation keeps improving for a while; stopping_step high: every epoch runs
SETTINGS = {
    "state": "ERROR",
    "epochs": 6,
    "stopping_step": 50,
    "train_batch_size": 32,  # several batches: the shuffling order matters
    "interaction_size_search": [],
}


class Interrupted(Exception):
    """Stands in for a killed process."""


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def epochs_started(monkeypatch):
    """Epoch indices each fit starts (the state saved before each), in order; ``stop_at`` makes
    the run die right after saving the state of that epoch."""
    started: list[int] = []
    stop_at: dict[str, int | None] = {"epoch": None, "pass": 0}  # pass: times to let it by
    save = TrainingResume.save

    def recording(self, trainer, epoch):
        save(self, trainer, epoch)
        started.append(epoch)
        if epoch == stop_at["epoch"]:
            if not stop_at["pass"]:
                raise Interrupted
            stop_at["pass"] -= 1

    monkeypatch.setattr(TrainingResume, "save", recording)
    return started, stop_at


def _metrics(result: dict) -> tuple[dict, dict]:
    return result["best_valid_result"], result["test_result"]


@pytest.mark.parametrize(
    ("model", "dataset", "own"),
    [
        # RecBole's BPR: shuffling, negative sampling. Its best validation epoch on this data is
        # the first, so it keeps its last epoch instead (no validation: eval_step 0)
        ("BPR", "tiny_implicit", {"eval_step": 0}),
        # stage 1 (run again on the resume), the weight average, diffusion noise; best epoch 5
        ("MuSiC", "tiny", {"stage1_epochs": 1}),
    ],
)
def test_an_interrupted_run_resumes_with_the_numbers_of_an_uninterrupted_one(
    tmp_path, epochs_started, caplog, model, dataset, own
):
    started, stop_at = epochs_started
    settings = {**SETTINGS, **own, "resume_dir": str(tmp_path / "a")}
    whole = run(model, dataset, config_dict=settings)
    assert started == list(range(6))

    started.clear()
    stop_at["epoch"] = 3
    settings["resume_dir"] = str(tmp_path / "b")
    with pytest.raises(Interrupted):
        run(model, dataset, config_dict=settings)
    stop_at["epoch"] = None
    started.clear()
    with caplog.at_level(logging.WARNING):
        resumed = run(model, dataset, config_dict=settings)

    assert started == [3, 4, 5]  # epochs 0-2 were not trained again
    assert "resume: continuing from epoch 3" in caplog.text  # on the console too
    assert resumed["run"]["resumed_from_epoch"] == 3  # and in the result
    assert whole["run"]["resumed_from_epoch"] is None
    assert _metrics(resumed) == _metrics(whole)
    assert resumed["run"]["best_epoch"] == whole["run"]["best_epoch"] >= 3
    # the best epochs' weights are the same to the bit (the metrics above are rounded)
    weights = [read_checkpoint(r["run"]["checkpoint"])["state_dict"] for r in (whole, resumed)]
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name


def test_a_size_search_interrupted_in_its_second_candidate_resumes_both(tmp_path, epochs_started):
    """Each candidate of MuSiC's size search is a fit of its own: the finished one comes back
    from its state before its last epoch, the interrupted one from where it stopped."""
    started, stop_at = epochs_started
    search = {
        **SETTINGS,
        "epochs": 3,
        "train_batch_size": 4096,  # one batch: the bookkeeping of two fits is the point here
        "stage1_epochs": 1,
        "interaction_vector_dim": 4,
        "interaction_size_search": [[8, 16]],
    }
    whole = run("MuSiC", "tiny_implicit", config_dict={**search, "resume_dir": str(tmp_path / "a")})
    assert started == [0, 1, 2] * 2
    settings = {**search, "resume_dir": str(tmp_path / "b")}
    started.clear()
    stop_at.update(epoch=1, **{"pass": 1})  # the first candidate passes epoch 1, the second dies
    with pytest.raises(Interrupted):
        run("MuSiC", "tiny_implicit", config_dict=settings)
    stop_at["epoch"] = None
    started.clear()
    resumed = run("MuSiC", "tiny_implicit", config_dict=settings)
    assert started == [2, 1, 2]  # the first candidate's last epoch, the second's rest
    assert resumed["run"]["size_search"] == whole["run"]["size_search"]
    assert _metrics(resumed) == _metrics(whole)


def test_a_run_with_other_settings_starts_from_scratch(tmp_path, epochs_started):
    started, stop_at = epochs_started
    folder = tmp_path / "resume"
    stop_at["epoch"] = 2
    with pytest.raises(Interrupted):
        run("BPR", "tiny_implicit", config_dict={**SETTINGS, "resume_dir": str(folder)})
    stop_at["epoch"] = None
    started.clear()
    other = {**SETTINGS, "resume_dir": str(folder), "learning_rate": 0.01}
    run("BPR", "tiny_implicit", config_dict=other)
    assert started[0] == 0
    assert len(list(folder.glob("BPR-*.pth"))) == 2  # one state per run, none overwritten


def test_a_resume_state_whose_best_checkpoint_is_gone_is_refused(tmp_path, epochs_started):
    started, stop_at = epochs_started
    settings = {
        **SETTINGS,
        "resume_dir": str(tmp_path / "resume"),
        "checkpoint_dir": str(tmp_path / "saved"),
    }
    stop_at["epoch"] = 2
    with pytest.raises(Interrupted):
        run("BPR", "tiny_implicit", config_dict=settings)
    stop_at["epoch"] = None
    for checkpoint in (tmp_path / "saved").glob("*.pth"):
        checkpoint.unlink()
    with pytest.raises(CheckpointError, match="delete the resume state"):
        run("BPR", "tiny_implicit", config_dict=settings)


def test_a_resume_dir_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    not_a_folder = tmp_path / "state.txt"
    not_a_folder.write_text("x")
    code = run_recbole_music.main(
        ["--model=BPR", "--dataset=tiny_implicit", "--epochs=1", f"--resume_dir={not_a_folder}"]
    )
    assert code == 2
    assert f"resume_dir {not_a_folder} is a file" in capsys.readouterr().err
