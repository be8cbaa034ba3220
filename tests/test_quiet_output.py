"""The main command's console: quiet by default (a progress line per model, a summary line, the
table last), RecBole's full output with --verbose, and the log file complete either way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import write_tiny_cross_domain

REPO = Path(__file__).resolve().parent.parent
CONFIG_DUMP = "learning_rate = "  # a line of RecBole's configuration dump
EPOCH_LINE = "epoch 0 training"  # one of RecBole's per-epoch lines


def _run(tmp_path: Path, *argv: str) -> tuple[str, str]:
    write_tiny_cross_domain(tmp_path / "dataset", "tiny")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO / "run_recbole_music.py"), "--dataset=tiny", "--epochs=2",
         "--torch_threads=1", *argv],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr


def _log_text(tmp_path: Path, model: str) -> str:
    logs = list((tmp_path / "log" / model).glob("*.log"))
    assert len(logs) == 1
    return logs[0].read_text()


def test_quiet_console_has_progress_summary_and_table_last(tmp_path):
    out, err = _run(tmp_path, "--model=TargetMF,BPR")
    console = out + err
    assert CONFIG_DUMP not in console and EPOCH_LINE not in console
    assert "General Hyper Parameters" not in console
    lines = out.splitlines()
    # off a terminal, the progress is plain lines with the validation score
    assert any(line.startswith("TargetMF: 100% (2/2 epochs, valid rmse ") for line in lines)
    summaries = [line for line in lines if ": best epoch " in line]
    assert [line.split(":")[0] for line in summaries] == ["TargetMF", "BPR"]
    assert "valid rmse" in summaries[0] and "test rmse" in summaries[0]
    assert "valid ndcg@20" in summaries[1] and summaries[1].endswith(" s")
    # the side-by-side table closes the output: nothing after its notes
    table_at = lines.index("test metrics (cold-start users)")
    assert table_at > lines.index(summaries[1])
    assert lines[-1].strip().startswith("hit@20:")
    # the log file is complete all the same
    log = _log_text(tmp_path, "TargetMF")
    assert CONFIG_DUMP in log and EPOCH_LINE in log


def test_verbose_brings_back_recbole_console_output(tmp_path):
    out, err = _run(tmp_path, "--model=TargetMF", "--verbose")
    console = out + err
    assert CONFIG_DUMP in console and EPOCH_LINE in console
    assert ": best epoch " not in out  # the quiet summary is for the quiet console
    assert CONFIG_DUMP in _log_text(tmp_path, "TargetMF")


def test_music_stage_one_shows_its_own_progress(tmp_path):
    out, _ = _run(tmp_path, "--model=MuSiC", "--stage1_epochs=2")
    lines = out.splitlines()
    stage1 = [line for line in lines if line.startswith("MuSiC stage 1 (side users): ")]
    assert stage1 and "(2/2 epochs" in stage1[-1]
    assert lines.index(stage1[-1]) < next(i for i, x in enumerate(lines) if ": best epoch " in x)


def test_one_model_ends_with_its_table(tmp_path):
    out, _ = _run(tmp_path, "--model=TargetMF")
    lines = [line for line in out.splitlines() if line.strip()]
    header = next(i for i, line in enumerate(lines) if line.startswith("metric "))
    assert lines[header - 1].startswith("TargetMF: best epoch ")  # the summary, then the table
    assert lines[-1].startswith("hit@20") and "rmse" in "\n".join(lines[header:])
