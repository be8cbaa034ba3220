"""The build-throughput bench runs end to end on a tiny population from the demo's generator."""

from __future__ import annotations

import re

from conftest import run_bench


def test_tiny_bench_run_reports_both_sizes_of_one_population(tmp_path):
    report = tmp_path / "build_throughput.md"
    proc = run_bench(
        "build_throughput.py",
        *("--scale", "0.1", "--activity", "1", "2", "--repeats", "1"),
        *("--work", str(tmp_path / "work"), "--results", str(report)),
    )
    assert proc.returncode == 0, proc.stderr
    text = report.read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([\d,]+) \+ ([\d,]+) = ([\d,]+) \|", text, flags=re.M)
    lines = [int(total.replace(",", "")) for _, _, total in rows]
    assert len(lines) == 2 and 1.8 < lines[1] / lines[0] < 2.2  # activity 2 doubles the reviews
    assert "activity=A, images=False" in text and "The population is FIXED" in text
    # the generated files are the demo generator's, with images linked by URL
    assert (tmp_path / "work" / "raw_a1" / "GENERATED.md").is_file()
    assert not list((tmp_path / "work" / "raw_a1" / "images").iterdir())
