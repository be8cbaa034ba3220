"""Progress: a tqdm bar on a terminal, plain lines in files and CI logs."""

from __future__ import annotations

import io

from dataset_prep.progress import Progress, format_duration


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_a_plain_line_every_ten_percent():
    stream = io.StringIO()
    with Progress(1000, "items", "rows", stream=stream, every_seconds=3600) as bar:
        for _ in range(200):
            bar.update(5)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 10
    assert lines[0].startswith("items: 10% (100/1,000 rows), ") and "left" in lines[0]
    assert lines[-1].startswith("items: 100% (1,000/1,000 rows), ")


def test_off_a_terminal_a_line_every_n_seconds_however_slow():
    stream = io.StringIO()
    bar = Progress(10**6, "reviews", "B", unit_scale=True, stream=stream, every_seconds=0)
    bar.update(1024)
    bar.update(1024)
    bar.close()
    assert stream.getvalue().splitlines()[1].startswith("reviews: 0% (2.0 KiB/976.6 KiB), ")


def test_off_a_terminal_the_last_line_says_where_it_ended():
    stream = io.StringIO()
    with Progress(100, "items", "rows", stream=stream, every_seconds=3600) as bar:
        for _ in range(19):
            bar.update(5)  # 95 %: the last 10 % step was at 90 %
    lines = stream.getvalue().splitlines()
    assert lines[-2].startswith("items: 90% ") and lines[-1].startswith("items: 95% (95/100 rows)")


def test_on_a_terminal_a_bar_and_disabled_nothing():
    terminal = _Terminal()
    with Progress(10, "items", "rows", stream=terminal) as bar:
        bar.update(10)
    assert terminal.getvalue().startswith("\ritems:")  # a tqdm bar, redrawn in place
    quiet = _Terminal()
    with Progress(10, "items", "rows", stream=quiet, enabled=False) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""


def test_durations_read_well():
    assert [format_duration(s) for s in (4.4, 185, 7620)] == ["4s", "3 min 05 s", "2 h 07 min"]


def test_a_build_logged_to_a_file_gets_lines_not_bars(tmp_path):
    from test_prep_cli import run_module, write_tsv

    rows = [(u, f"{d[0]}{i}", d) for u in "abc" for d in ("books", "movies") for i in range(3)]
    inter = write_tsv(tmp_path / "inter.tsv", ["user_id", "item_id", "domain"], rows)
    res = run_module(
        "build",
        "--aux",
        str(inter),
        "--aux-where",
        "domain=books",
        "--target",
        str(inter),
        "--target-where",
        "domain=movies",
        "--out",
        str(tmp_path / "o"),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr  # a tqdm bar redraws with carriage returns
    assert "aux interactions inter.tsv: 100% (" in res.stderr


def test_off_a_terminal_model_loading_draws_no_bar(tmp_path):
    import subprocess
    import sys

    from test_prep_cli import REPO
    from tiny_models import save_tiny_bert

    bert = save_tiny_bert(tmp_path / "bert")
    code = f"from dataset_prep.features.encoders import *; load_encoder(EncoderSpec({bert!r}))"
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "Loading weights" not in res.stderr


def test_epoch_estimates_count_only_the_epochs_and_say_they_are_a_bound(monkeypatch):
    import dataset_prep.progress as progress
    import recbole_music.epoch_progress as epoch_progress

    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(epoch_progress.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()
    bar = epoch_progress.EpochProgress("MuSiC", 60, "NDCG@20", stream=stream)
    bar.every_seconds = 0
    clock[0] = 900.0  # 15 min before the first epoch ends (stage 1 of MuSiC)
    bar.validated(0, 0.01)
    clock[0] = 930.0
    bar.validated(1, 0.02)  # one epoch: 30 s
    lines = stream.getvalue().splitlines()
    assert "left" not in lines[0]  # no pace known after the first epoch
    assert lines[1].endswith("at most about 29 min 00 s left (early stopping may end it sooner)"), (
        lines[1]
    )  # 58 epochs x 30 s, not 58 x 465 s
