"""bench/compare.py with MuSiC's size search averaging its candidates (``size_search_average``):
the cells CSV names the members and a line is imported only for a cell that searches alike,
the optional best-candidate row, the ablation's single-model full row, and the main table's
averaged cell read from the size_search_average bench's cells."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from test_compare import _argv, _fake_records, _read_csv, _rows, root  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import _grid  # noqa: E402
import size_search_average as bench  # noqa: E402
from comparison import cli, plan  # noqa: E402
from comparison.plan import BEST_CANDIDATE_ROW, SINGLE_MODEL  # noqa: E402
from comparison.tables import Table, add_improvement  # noqa: E402

torch.set_num_threads(1)

BEST = {"interaction_vector_dim": 128, "embedding_size": 64}
OTHER = {"interaction_vector_dim": 64, "embedding_size": 32}
AVERAGED_SEARCH = [
    {"settings": OTHER, "chosen": False, "averaged": True},
    {"settings": BEST, "chosen": True, "averaged": True},
]
PLAIN_SEARCH = [{"settings": BEST, "chosen": True}, {"settings": OTHER, "chosen": False}]
RECORD = {"size_search": PLAIN_SEARCH}  # a full model's run record


@pytest.fixture
def averaging(monkeypatch):
    """MuSiC's defaults with ``size_search_average: True`` whatever the YAML says."""
    defaults = {**plan.music_defaults(), "size_search_average": True}
    monkeypatch.setattr(plan, "music_defaults", lambda: defaults)


def _searches(opts) -> dict:
    """A MuSiC run's record: averaged unless told not to, no search at fixed sizes."""
    if "interaction_size_search" in opts:
        return {}
    single = opts.get("size_search_average") == "False"
    return {"size_search": PLAIN_SEARCH if single else AVERAGED_SEARCH}


def test_an_averaged_cell_names_its_members_and_is_imported_only_where_the_cell_averages(
    root,  # noqa: F811
    monkeypatch,
    averaging,
):
    calls = _fake_records(monkeypatch, _searches)
    argv = _argv(root, "--models=MuSiC", "--tables=main", "--cells-from-csv")
    assert cli.main(argv) == 0 and len(calls) == 1
    path = root / "out" / "tiny" / "main_cells.csv"
    cells = {r[0]: r for r in _read_csv(path)}
    column = cells["model"].index("averaged")
    best, other = (
        "interaction_vector_dim=128;embedding_size=64",
        "interaction_vector_dim=64;embedding_size=32",
    )
    assert cells["MuSiC"][column] == f"{best} | {other}"  # the best (chosen) first
    assert cells["MuSiC"][cells["model"].index("chosen")] == best
    # a fresh machine: the line comes back for the same (averaging) cell, nothing runs
    before = path.read_text()
    shutil.rmtree(root / "work")
    calls.clear()
    assert cli.main(argv) == 0 and not calls and path.read_text() == before
    # the same row searching without the average does not take the averaged line: it runs
    shutil.rmtree(root / "work")
    single = [*argv, "--model-arg", "MuSiC:size_search_average=False"]
    assert cli.main(single) == 0 and len(calls) == 1
    cells = {r[0]: r for r in _read_csv(path)}
    assert cells["MuSiC"][column] == ""


def test_a_plain_search_line_is_not_taken_for_a_cell_that_averages(
    root,  # noqa: F811
    monkeypatch,
):
    """Lines written while the default kept the best candidate (no ``averaged`` column, as the
    files committed before it) are rerun once the default averages."""
    calls = _fake_records(monkeypatch, lambda opts: {"size_search": PLAIN_SEARCH})
    argv = _argv(root, "--models=MuSiC", "--tables=main", "--cells-from-csv")
    monkeypatch.setattr(plan, "music_defaults", lambda: {"size_search_average": False})
    assert cli.main(argv) == 0 and len(calls) == 1
    path = root / "out" / "tiny" / "main_cells.csv"
    lines = _read_csv(path)
    column = lines[0].index("averaged")
    path.write_text("\n".join(",".join(r[:column] + r[column + 1 :]) for r in lines) + "\n")
    shutil.rmtree(root / "work")
    calls.clear()
    assert cli.main(argv) == 0 and not calls  # an older file still imports for a plain cell
    shutil.rmtree(root / "work")
    monkeypatch.setattr(plan, "music_defaults", lambda: {"size_search_average": True})
    assert cli.main(argv) == 0 and len(calls) == 1


def test_the_best_candidate_row_searches_without_the_average_and_is_no_other_model(
    root,  # noqa: F811
    monkeypatch,
    averaging,
):
    calls = _fake_records(monkeypatch, _searches)
    argv = _argv(root, "--models=TargetMF,MuSiC", "--tables=main", "--best-candidate-row")
    assert cli.main(argv) == 0
    music = [c for c in calls if "--model=MuSiC" in c]
    assert len(music) == 2 and sum(SINGLE_MODEL in c for c in music) == 1
    text = (root / "out" / "tiny" / "main.md").read_text()
    assert {BEST_CANDIDATE_ROW, "MuSiC", "TargetMF"} <= set(_rows(text))
    assert f"{BEST_CANDIDATE_ROW}: MuSiC's size search keeping its best candidate" in text
    # "MuSiC vs best other" sets the average beside the best other model, not beside its own
    # best candidate
    column = (0.2, "ndcg@20")
    rows = [
        _grid.Row("TargetMF", {column: [0.04]}),
        _grid.Row(BEST_CANDIDATE_ROW, {column: [0.05]}),
        _grid.Row("MuSiC", {column: [0.06]}),
    ]
    table = Table(rows, [column], {})
    add_improvement(table)
    assert table.improvement[column] == pytest.approx(50.0)


def test_the_ablation_compares_single_models_when_the_default_averages(averaging):
    from comparison.tasks import Task

    args = cli.parse_args(["--tables", "main", "ablation", "--betas=0.2", "--seeds=1"])
    for feedback, has_features, single in (("implicit", False, True), ("explicit", True, False)):
        task = Task("t", Path("."), {}, feedback, [], has_features)
        entries, waiting = plan.plan(task, ["MuSiC"], args, lambda cell: {"run": RECORD})
        main = next(e for e in entries if e.table == "main" and e.row == "MuSiC")
        full = next(e for e in entries if e.table == "ablation" and "full" in e.row)
        assert (SINGLE_MODEL in full.cell.overrides) is single  # content vectors search nothing
        assert SINGLE_MODEL not in main.cell.overrides and waiting == 0
        variants = [e for e in entries if e.table == "ablation" and e is not full]
        assert variants and all(SINGLE_MODEL not in e.cell.overrides for e in variants)


def test_the_averaged_cells_are_read_from_the_size_search_average_bench(
    root,  # noqa: F811
    monkeypatch,
    tmp_path,
    averaging,
):
    """The main table's cell from the bench task of the same dataset with no overrides, the
    dual table's from the one with its --cold_item_ratio; never one of other overrides."""
    cells_csv = tmp_path / "size_search_average_cells.csv"
    monkeypatch.setattr(bench, "CELLS_CSV", cells_csv)
    dual = ("--cold_item_ratio=0.2",)
    monkeypatch.setattr(bench, "TASKS", {"tiny": ("tiny", ()), "tiny_dual": ("tiny", dual)})
    metrics = ["rmse", "mae"]
    answers = [
        bench.Answer(
            bench.BEST_ROW,
            {"rmse": 1.1, "mae": 0.9},
            {"rmse": 1.2, "mae": 0.95},
            [bench.label_of(BEST)],
            2,
            30.0,
        ),
        bench.Answer(
            bench.AVERAGE_ROW,
            {"rmse": 1.0, "mae": 0.8},
            {"rmse": 1.05, "mae": 0.85},
            [bench.label_of(BEST), bench.label_of(OTHER)],
            2,
            30.0,
        ),
    ]
    held_out = [  # the dual task's: the best candidate 1.6, the average 1.5
        bench.Answer(a.row, a.valid, {"rmse": rmse, "mae": 1.2}, a.members, 2, 40.0)
        for a, rmse in zip(answers, (1.6, 1.5), strict=True)
    ]
    outcomes = [
        bench.Outcome("tiny", 0.2, 1, metrics, answers),
        bench.Outcome("tiny_dual", 0.5, 1, metrics, held_out),
    ]
    bench.write_cells(outcomes, cells_csv)
    calls = _fake_records(monkeypatch, _searches)
    # the bench runs the defaults: a cell with other overrides (here --epochs) is run
    with_epochs = _argv(root, "--models=MuSiC", "--tables=main", "--cells-from-csv")
    assert cli.main(with_epochs) == 0 and len(calls) == 1
    shutil.rmtree(root / "work")
    calls.clear()
    argv = [a for a in with_epochs if not a.startswith("--epochs")]
    folder = root / "out" / "tiny"
    for _ in range(2):  # the bench's cell before the table's own line, again on a fresh machine
        assert cli.main(argv) == 0 and not calls
        assert _rows((folder / "main.md").read_text())["MuSiC"][1].startswith("**1.0500")
        text = (folder / "main.md").read_text()
        assert "read from bench/results/size_search_average_cells.csv" in text
        shutil.rmtree(root / "work")
    cells = {r[0]: r for r in _read_csv(folder / "main_cells.csv")}
    header = cells["model"]
    line = cells["MuSiC"]
    assert line[header.index("averaged")] == (
        "interaction_vector_dim=128;embedding_size=64 | interaction_vector_dim=64;embedding_size=32"
    )
    assert line[header.index("composed")] == "composed" and line[header.index("seconds")] == "30.0"
    # the dual table (β = 50 %, new items held out): the dual bench task's cells, the row
    # "MuSiC (best candidate)" from the bench's best candidate (the same candidate runs)
    dual_argv = [*argv[:-1], "--tables=dual", "--best-candidate-row", "--cells-from-csv"]
    calls.clear()
    assert cli.main(dual_argv) == 0 and not calls
    dual_text = (folder / "dual.md").read_text()
    dual_rows = _rows(dual_text)
    assert dual_rows["MuSiC"][1].startswith("**1.5000")
    assert dual_rows[BEST_CANDIDATE_ROW][1].startswith("1.6000")
    dual_cells = {r[0]: r for r in _read_csv(folder / "dual_cells.csv")}
    best_line = dual_cells[BEST_CANDIDATE_ROW]
    assert best_line[header.index("chosen")] == "interaction_vector_dim=128;embedding_size=64"
    assert best_line[header.index("averaged")] == ""
    counted = re.search(r"(\d+) of the \d+ runs \(MuSiC's size searches\)", dual_text)
    assert counted and counted.group(1) == "2"  # both rows counted as the bench's
    # where the default keeps the best candidate, the bench's average is not taken
    shutil.rmtree(root / "work")
    (folder / "main_cells.csv").unlink()
    monkeypatch.setattr(plan, "music_defaults", lambda: {"size_search_average": False})
    assert cli.main(argv) == 0 and len(calls) == 1
