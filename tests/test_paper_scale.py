"""The paper-scale bench runs end to end at a tiny scale: generate, build, 4,096-dim tables,
their load, and MuSiC's steps, each in its own process, and a rerun reads its cached steps."""

from __future__ import annotations

import re

from conftest import run_bench


def _run(tmp_path, *extra):
    return run_bench(
        "paper_scale.py",
        *("--scale", "0.002", "--new-users", "5"),
        *("--only", "generate", "build", "vectors", "load", "music"),
        *("--work", str(tmp_path / "work"), "--out", str(tmp_path / "paper_scale.md")),
        *extra,
    )


def test_tiny_paper_scale_run_reports_every_step_and_resumes(tmp_path):
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "paper_scale.md").read_text(encoding="utf-8")
    for step in (
        "generate the raw files",
        "build (paper filters)",
        "load + align the item table",
        "MuSiC: one stage-1 epoch",
        "MuSiC: one stage-2 epoch",
        "MuSiC: full-ranking evaluation",
        "MuSiC: recommend for 5 new users",
    ):
        row = re.search(rf"^\| {re.escape(step)}[^|]* \| ([\d,.]+) \|", text, flags=re.M)
        assert row, f"no timed row '{step}' in:\n{text}"
    assert "failed" not in text
    assert "shape [" in text and ", 4096]" in text
    # every step is cached: a rerun starts no child and writes the same table
    again = _run(tmp_path)
    assert again.returncode == 0 and "[paper_scale]" not in again.stdout
    assert (tmp_path / "paper_scale.md").read_text(encoding="utf-8") == text
