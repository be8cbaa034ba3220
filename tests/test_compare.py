"""bench/compare.py on tiny data: the tables, the steps figure, resume (no run twice),
report-only, the improvement row's sign, skipped models and tasks, a reverse-direction build."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_tiny_cross_domain

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import _grid  # noqa: E402
from comparison import cli, figures, run, tasks  # noqa: E402
from comparison.catalogue import OURS  # noqa: E402
from comparison.tables import Table, add_improvement, render_markdown  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def root(tmp_path, monkeypatch):
    """``dataset/tiny``: tiny explicit data marked GENERATED, as the demo's build.json is."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    folder = write_tiny_cross_domain(tmp_path / "dataset", "tiny")
    (folder / "build.json").write_text(json.dumps({"generated": True, "feedback": "explicit"}))
    return tmp_path


def _argv(root: Path, *more: str) -> list[str]:
    return [
        "--tasks=tiny",
        f"--cwd={root}",
        f"--work={root / 'work'}",
        f"--out={root / 'out'}",
        "--betas=0.2",
        "--seeds=1",
        "--epochs=2",
        "--no-paper-row",  # its own test below
        *more,
    ]


def _rows(markdown: str) -> dict[str, list[str]]:
    """First cell -> the other cells of every table body row (headers left out); a row label's
    epoch-limit mark is dropped (short test runs end at their limit)."""
    lines = markdown.splitlines()
    rows = {}
    for line, after in zip(lines, [*lines[1:], ""]):
        if line.startswith("| ") and not after.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].removesuffix(" ‡")] = cells[1:]
    return rows


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture
def counted(monkeypatch):
    """Every command a cell runs (the real subprocess still runs)."""
    calls: list[list[str]] = []
    real = _grid.execute

    def spy(command, cwd, log):
        calls.append(command)
        return real(command, cwd, log)

    monkeypatch.setattr(_grid, "execute", spy)
    return calls


@pytest.fixture
def best_candidate_default(monkeypatch):
    """MuSiC's defaults with its size search keeping the best candidate alone: then Table 2,
    the ablation and the sweeps share the full model's cell, as these tests count (with the
    default that averages the candidates, the ablation's and sweeps' full model is a cell of
    its own: tests/test_compare_averaged.py)."""
    from comparison import plan

    defaults = {**plan.music_defaults(), "size_search_average": False}
    monkeypatch.setattr(plan, "music_defaults", lambda: defaults)


def _fake_runs(monkeypatch, metrics_of, fail=()):
    """Replace the subprocess by a stub writing ``metrics_of(model, argv)`` as the test metrics;
    every model counts as registered. Returns the list of commands run."""
    calls: list[list[str]] = []

    def fake(command, cwd, log):
        calls.append(command)
        opts = dict(a[2:].split("=", 1) for a in command[2:] if a.startswith("--"))
        if opts["model"] in fail:
            with open(log, "a") as handle:
                handle.write("boom: broken model\n")
            return 1
        payload = {
            "valid": {},
            "test": metrics_of(opts["model"], opts),
            "run": {"model_selection": "best epoch on the validation users"},
        }
        Path(opts["result_json"]).write_text(json.dumps(payload))
        return 0

    monkeypatch.setattr(_grid, "execute", fake)
    monkeypatch.setattr(run, "unavailable_reason", lambda model: None)
    return calls


def test_grid_writes_tables_and_figure_then_resumes(
    root, counted, monkeypatch, capsys, best_candidate_default
):
    argv = _argv(
        root,
        "--models=ItemMean,NoSuchModel,MuSiC",
        "--tables",
        "main",
        "steps",
        "--steps=2,10",
    )
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    # ItemMean, MuSiC and MuSiC at T = 2; T = 10 (the default) is the main table's MuSiC cell,
    # and NoSuchModel never runs
    assert len(counted) == 3
    assert "skip NoSuchModel, not registered" in out
    assert "[1/3] tiny · ItemMean · β=20% seed=1: started " in out  # progress lines per cell
    ended = re.search(r"ItemMean · β=20% seed=1: [\d.]+ s, ", out)
    assert ended and out.index("ItemMean · β=20% seed=1: started") < ended.start()
    # the sweep's T = 2 runs after the full model, at the sizes its search chose, no search
    full = json.loads(next((root / "work" / "tiny").glob("MuSiC-epochs*seed1-*.json")).read_text())
    chosen = next(c["settings"] for c in full["run"]["size_search"] if c["chosen"])
    t2 = counted[-1]
    assert "--diffusion_steps=2" in t2 and "--interaction_size_search=[]" in t2
    assert all(f"--{key}={value}" in t2 for key, value in chosen.items())

    folder = root / "out" / "tiny"
    main_md = (folder / "main.md").read_text()
    assert "**GENERATED (synthetic) data**" in main_md
    assert "**Command:** `python bench/compare.py --tasks=tiny" in main_md
    assert "**Wall time:**" in main_md
    assert "NoSuchModel: not registered" in main_md
    rows = _rows(main_md)
    assert list(rows) == ["ItemMean", "MuSiC", "*MuSiC vs best other*"]
    assert len(rows["ItemMean"]) == 5 + 1  # 1 β × 5 explicit metrics, s/run
    assert all(c.endswith("%") for c in rows["*MuSiC vs best other*"][:5])
    assert sum("**" in cell for r in rows.values() for cell in r) >= 5  # a best per column
    table = _read_csv(folder / "main.csv")
    assert table[0][:4] == ["model", "seeds", "0.2/mae/mean", "0.2/mae/std"]
    assert [r[0] for r in table[1:3]] == ["ItemMean", "MuSiC"]

    steps_md = (folder / "steps.md").read_text()
    assert list(_rows(steps_md)) == ["T = 2", "T = 10"]
    assert [r[0] for r in _read_csv(folder / "steps.csv")[1:]] == ["T = 2", "T = 10"]
    unbold = lambda cells: [c.strip("*") for c in cells[:5]]  # noqa: E731
    assert unbold(_rows(steps_md)["T = 10"]) == unbold(rows["MuSiC"])  # the same cell
    assert (folder / "steps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "interaction vectors" in steps_md  # tiny has no feature tables: says what MuSiC ran on

    # second invocation: every cell comes from the cache, nothing runs
    def no_run(command, cwd, log):
        raise AssertionError(f"ran {command}")

    monkeypatch.setattr(_grid, "execute", no_run)
    before = {p.name: p.read_text() for p in folder.glob("*.csv")}
    assert cli.main(argv) == 0
    assert "cached" in capsys.readouterr().out
    assert {p.name: p.read_text() for p in folder.glob("*.csv")} == before

    # report-only rebuilds the tables from the cache alone
    for path in folder.iterdir():
        path.unlink()
    assert cli.main([*argv, "--report-only"]) == 0
    assert {p.name: p.read_text() for p in folder.glob("*.csv")} == before
    assert "Tables rebuilt from the cached cells" in (folder / "main.md").read_text()
    assert (folder / "steps.png").is_file()


def test_activation_sweep_passes_each_activation_and_shares_the_default_cell(
    root, monkeypatch, best_candidate_default
):
    def metrics(model, opts):
        # a distinct RMSE per activation, so the rows show which run each came from
        rmse = {"relu": 1.2, "softmax": 1.4}.get(opts.get("activation"), 1.0)
        return {"mae": 0.9, "rmse": rmse}

    calls = _fake_runs(monkeypatch, metrics)
    argv = _argv(
        root, "--models=MuSiC", "--tables=main,activation", "--activations=tanh,relu,softmax"
    )
    assert cli.main([*argv, "--metrics=mae,rmse"]) == 0
    passed = [a for c in calls for a in c if a.startswith("--activation=")]
    # tanh is MuSiC's default: the main table's MuSiC cell, run once and without the flag
    assert len(calls) == 3 and sorted(passed) == ["--activation=relu", "--activation=softmax"]
    folder = root / "out" / "tiny"
    rows = _rows((folder / "activation.md").read_text())
    assert list(rows) == ["tanh", "relu", "softmax"]
    assert [r[1].strip("*").split(" ")[0] for r in rows.values()] == ["1.0000", "1.2000", "1.4000"]
    assert "paper Fig. 4" in (folder / "activation.md").read_text()
    assert _read_csv(folder / "activation.csv")[0][0] == "activation"


def _is_png(path: Path) -> bool:
    """A PNG a reader decodes into an image with pixels, not just a file with the right start."""
    import matplotlib.image

    return (
        path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        and matplotlib.image.imread(path).shape[0] > 100
    )


def test_every_table_gets_a_figure_rebuilt_from_the_cache_or_the_csv(root, monkeypatch):
    def metrics(model, opts):
        rmse = {"ItemMean": 1.2, "TargetMF": 1.1}.get(model, 1.0) + int(opts["seed"]) / 100
        return {"mae": 0.9, "rmse": rmse, "ndcg@20": 0.05}

    _fake_runs(monkeypatch, metrics)
    argv = _argv(
        root, "--models=ItemMean,TargetMF,MuSiC", "--seeds=1,2", "--betas=0.2,0.5",
        "--steps=2,10", "--activations=tanh,relu", "--metrics=mae,rmse,ndcg@20",
    )  # fmt: skip
    assert cli.main(argv) == 0
    folder = root / "out" / "tiny"
    names = ["main", "ablation", "steps", "activation", "dual"]
    for name in names:
        assert _is_png(folder / f"{name}.png"), name
        assert f"]({name}.png)" in (folder / f"{name}.md").read_text()

    # --report-only draws them again from the cached cells alone
    for path in folder.glob("*.png"):
        path.unlink()
    assert cli.main([*argv, "--report-only"]) == 0
    assert all(_is_png(folder / f"{name}.png") for name in names)

    # --figures-from-csv: from the tables' CSVs (no cells), the image line added once
    monkeypatch.setattr(_grid, "execute", lambda command, cwd, log: pytest.fail(f"ran {command}"))
    for path in folder.glob("*.png"):
        path.unlink()
    main_md = (folder / "main.md").read_text().replace("\n![Key metric per model](main.png)\n", "")
    (folder / "main.md").write_text(main_md)
    for _ in range(2):
        assert cli.main(["--tasks=tiny", f"--out={root / 'out'}", "--figures-from-csv"]) == 0
    assert all(_is_png(folder / f"{name}.png") for name in names)
    assert (folder / "main.md").read_text().count("](main.png)") == 1
    assert not list(folder.glob(".*"))  # written atomically, no temporary file left


def test_figure_series_from_csv_skips_the_improvement_row(tmp_path):
    path = tmp_path / "main.csv"
    path.write_text(
        "model,seeds,0.2/rmse/mean,0.2/rmse/std,0.2/ndcg@20/mean,0.2/ndcg@20/std,seconds_per_run\n"
        "A,3,1.000000,0.100000,,,4.0\n"
        "MuSiC,3,0.900000,0.050000,0.030000,0.002000,9.0\n"
        "MuSiC relative improvement over best other (%),,10.0000,,,,\n"
    )
    series = figures.read_csv_series(path)
    assert series == {
        "A": {(0.2, "rmse"): (1.0, 0.1)},
        "MuSiC": {(0.2, "rmse"): (0.9, 0.05), (0.2, "ndcg@20"): (0.03, 0.002)},
    }
    assert figures.key_metric(series) == "rmse"
    assert figures.key_metric(series, "implicit") == "ndcg@20"


def test_improvement_row_sign_convention(root, monkeypatch):
    # MuSiC: lower MAE/RMSE than the best other (better) but lower NDCGs (worse)
    values = {
        "A": {"mae": 1.0, "rmse": 1.2, "ratedndcg@20": 0.8, "ndcg@20": 0.02, "recall@20": 0.01},
        "B": {"mae": 1.1, "rmse": 1.0, "ratedndcg@20": 0.7, "ndcg@20": 0.04, "recall@20": 0.03},
        "MuSiC": {
            "mae": 0.9,
            "rmse": 1.1,
            "ratedndcg@20": 0.88,
            "ndcg@20": 0.03,
            "recall@20": 0.03,
        },
    }
    _fake_runs(monkeypatch, lambda model, opts: values[model])
    assert cli.main(_argv(root, "--models=A,B,MuSiC", "--tables=main")) == 0
    rows = _rows((root / "out" / "tiny" / "main.md").read_text())
    improvement = rows["*MuSiC vs best other*"][:5]
    # mae: (1.0 − 0.9)/1.0 = +10 %; rmse: (1.0 − 1.1)/1.0 = −10 %; rated NDCG (0.88 − 0.8)/0.8 =
    # +10 %; ndcg (0.03 − 0.04)/0.04 = −25 %; recall: a tie, 0 %
    assert improvement == ["+10.00%", "-10.00%", "+10.00%", "-25.00%", "+0.00%"]
    assert rows["MuSiC"][0].startswith("**0.9000")  # best MAE in bold
    assert rows["B"][1].startswith("**1.0000")  # best RMSE (lower) in bold
    last = _read_csv(root / "out" / "tiny" / "main.csv")[-1]
    assert last[0].startswith("MuSiC relative improvement")
    assert float(last[2]) == pytest.approx(10.0) and float(last[4]) == pytest.approx(-10.0)
    assert _grid.relative_improvement(0.9, 1.0, "rmse") == pytest.approx(10.0)
    assert _grid.relative_improvement(0.9, 1.0, "ndcg@20") == pytest.approx(-10.0)


def test_no_improvement_is_claimed_from_fewer_seeds_of_music_than_of_the_best_other():
    column = (0.2, "ndcg@20")
    rows = [_grid.Row("BPR", {column: [0.04, 0.05, 0.06]}), _grid.Row(OURS, {column: [0.07]})]
    table = Table(rows, [column], {})
    add_improvement(table)
    assert table.improvement == {column: None}  # one seed against three: n/a, not +40 %
    rows[1].values[column] += [0.03, 0.05]
    add_improvement(table)
    assert table.improvement[column] == pytest.approx(0.0)


def test_a_partial_row_is_not_bolded_even_with_the_best_mean():
    column = (0.2, "ndcg@20")
    rows = [_grid.Row("BPR", {column: [0.04, 0.05, 0.06]}), _grid.Row("Late", {column: [0.09]})]
    assert _grid.best_rows(rows, [column], metric_of=lambda c: c[1]) == {
        column: "BPR"
    }  # 0.09 is one seed of three
    rows[1].values[column] += [0.08, 0.07]
    assert _grid.best_rows(rows, [column], metric_of=lambda c: c[1]) == {column: "Late"}
    table = Table(rows, [column], {})
    markdown = render_markdown(table, "model", n_seeds=3)
    assert "**0.0800" in markdown and "**0.0500" not in markdown


def test_a_cell_short_of_seeds_says_so_and_its_complete_neighbours_do_not():
    full, short = (0.5, "ndcg@20"), (0.8, "ndcg@20")
    rows = [_grid.Row(OURS, {full: [0.05, 0.06, 0.07], short: [0.04]})]
    markdown = render_markdown(Table(rows, [full, short], {}), "model", n_seeds=3)
    line = next(x for x in markdown.splitlines() if x.startswith(f"| {OURS} |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "**0.0600 ± 0.0100**"  # three seeds: no note
    assert cells[2] == "**0.0400** (1/3 seeds)"  # the only row in its column, yet one seed


def _dies_once_then_finishes(monkeypatch, forget_tries: bool = False) -> list[dict]:
    """Cell runs whose first try saves a training state 100 s in and is killed, and whose
    second finishes; ``forget_tries`` deletes the working folder's record of the tries, as in a
    folder older than the record. Returns each try's resume folder and whether it had a state."""
    tries: list[dict] = []

    def fake(command, cwd, log):
        opts = dict(a[2:].split("=", 1) for a in command[2:] if a.startswith("--"))
        resume_dir = Path(opts["resume_dir"])
        tries.append({"resume_dir": resume_dir, "had_state": resume_dir.is_dir()})
        if len(tries) == 1:
            resume_dir.mkdir(parents=True)
            state = resume_dir / "TargetMF-0123.pth"
            state.write_bytes(b"state")
            saved_at = time.time() + 100  # as if that state were saved 100 s into the try
            os.utime(state, (saved_at, saved_at))
            if forget_tries:
                (resume_dir.parent / "tries.json").unlink()
            return -9
        payload = {"valid": {}, "test": {"rmse": 1.0}, "run": {}}
        Path(opts["result_json"]).write_text(json.dumps(payload))
        return 0

    monkeypatch.setattr(_grid, "execute", fake)
    monkeypatch.setattr(run, "unavailable_reason", lambda model: None)
    return tries


def test_an_interrupted_cell_resumes_from_its_working_folder(root, monkeypatch):
    """A cell whose run dies keeps its ``.partial`` folder (checkpoints, resume state); the next
    try hands the run the same ``resume_dir`` and the cell records that it resumed, its seconds
    counting the first try until the last state it saved."""
    tries = _dies_once_then_finishes(monkeypatch)
    argv = _argv(root, "--models=TargetMF", "--tables=main")
    assert cli.main(argv) == 1
    work = root / "work" / "tiny"
    (partial,) = work.glob(".*.partial")
    assert tries[0]["resume_dir"] == partial / "resume" and not tries[0]["had_state"]

    assert cli.main(argv) == 0
    assert tries[1]["resume_dir"] == tries[0]["resume_dir"] and tries[1]["had_state"]
    (cell,) = work.glob("TargetMF*.json")
    result = json.loads(cell.read_text())
    assert result["resumed"] is True
    assert 100 <= result["seconds"] < 160, result["seconds"]
    assert result["seconds_counted"].startswith("every try: 100 s of earlier tries")
    assert not partial.exists()  # removed once the cell is cached
    assert "last try only" not in (root / "out" / "tiny" / "main.md").read_text()


def test_a_resumed_cell_whose_first_try_was_not_recorded_says_so(root, monkeypatch):
    """A working folder with a saved state but no record of its tries (older than the record):
    the seconds are the last try's, and the table says that s/run understates the row."""
    _dies_once_then_finishes(monkeypatch, forget_tries=True)
    argv = _argv(root, "--models=TargetMF", "--tables=main")
    assert cli.main(argv) == 1
    assert cli.main(argv) == 0
    (cell,) = (root / "work" / "tiny").glob("TargetMF*.json")
    result = json.loads(cell.read_text())
    assert result["resumed"] is True and result["seconds_counted"] == _grid.LAST_TRY_ONLY
    assert result["seconds"] < 60
    markdown = (root / "out" / "tiny" / "main.md").read_text()
    assert "were not recorded), so s/run understates them: TargetMF 1." in markdown
    # a fresh machine: the cells CSV keeps the flag, so the rebuilt table keeps the note
    shutil.rmtree(root / "work")
    assert cli.main([*argv, "--cells-from-csv", "--report-only"]) == 0
    rebuilt = (root / "out" / "tiny" / "main.md").read_text()
    assert "1 of the 1 runs were read from the committed main_cells.csv" in rebuilt
    assert "were not recorded), so s/run understates them: TargetMF 1." in rebuilt


def test_ablation_rows_failures_and_retry(root, monkeypatch, capsys, best_candidate_default):
    seen = []

    def metrics(model, opts):
        seen.append(opts)
        return {"mae": 0.9, "rmse": 1.1, "ndcg@20": 0.03}

    calls = _fake_runs(monkeypatch, metrics, fail={"TargetMF"})
    argv = _argv(root, "--models=TargetMF,MuSiC", "--tables=main,ablation", "--seeds=1,2")
    assert cli.main(argv) == 1  # a failed cell: reported, not cached
    out = capsys.readouterr().out
    # 2 seeds × (TargetMF, MuSiC full; w/o interaction vectors, w/o diffusion, direct
    # transfer, w/o side) — full MuSiC is one cell for both tables; tiny has no content
    # features, so full MuSiC reads the interaction vectors and ID embeddings are a row
    assert len(calls) == 12
    assert all(o["epochs"] == "2" for o in seen)
    assert all(o.get("stage1_epochs") == "2" for o in seen if o["model"] == "MuSiC")
    folder = root / "out" / "tiny"
    ablation = _rows((folder / "ablation.md").read_text())
    assert list(ablation) == [
        "MuSiC (full, interaction vectors)",
        "w/o interaction vectors (ID embeddings)",
        "w/o diffusion",
        "direct transfer (ours)",
        "w/o side",
    ]
    assert ablation["w/o side"][0].startswith("0.9000 ± 0.0000")
    main_md = (folder / "main.md").read_text()
    assert "failed: `TargetMF β=0.2 seed=1" in main_md
    assert (
        "2 of 4 runs not finished (failed, skipped or not run yet): TargetMF 0 of 2 finished."
        in main_md
    )
    assert list(_rows(main_md)) == ["MuSiC"]
    # the failed run's output stays in its log, which the failure message names
    logs = list((root / "work" / "tiny").glob("TargetMF*.log"))
    assert logs and all("boom: broken model" in log.read_text() for log in logs)
    assert all(f"full output in {log}" in out for log in logs)
    assert all(f", output in {log}" in out for log in logs)  # named when the run started

    # the failed cells run again next time (the rest is cached), and the error notes go
    calls = _fake_runs(monkeypatch, metrics)
    assert cli.main(argv) == 0
    assert [c[2] for c in calls] == ["--model=TargetMF"] * 2
    main_md = (folder / "main.md").read_text()
    assert "failed" not in main_md
    assert list(_rows(main_md)) == ["TargetMF", "MuSiC", "*MuSiC vs best other*"]
    assert not any("boom" in log.read_text() for log in (root / "work" / "tiny").glob("*.log"))

    # with feature tables, the full model is multimodal and w/o MLLM is a row
    features = root / "dataset" / "tiny" / "features"
    features.mkdir()
    for table in tasks.MULTIMODAL_TABLES:
        (features / f"{table}.json").write_text("{}")
    calls.clear()
    assert cli.main(_argv(root, "--models=MuSiC", "--tables=ablation")) == 0
    assert len(calls) == 4  # w/o MLLM (collaborative) is the cell that already ran as a row
    ablation = _rows((folder / "ablation.md").read_text())
    assert list(ablation) == [
        "MuSiC (full)",
        "w/o MLLM",
        "w/o diffusion",
        "direct transfer (ours)",
        "w/o side",
    ]


def test_variants_runs_the_full_model_and_the_chosen_ablation_rows_only(root, monkeypatch):
    calls = _fake_runs(monkeypatch, lambda model, opts: {"ndcg@20": 0.03})
    argv = _argv(root, "--models=MuSiC", "--tables=ablation", "--seeds=1")
    assert cli.main([*argv, "--variants", "W/O SIDE", "direct"]) == 0
    ran = sorted(" ".join(a for a in c if a.startswith(("--use_side", "--direct"))) for c in calls)
    assert ran == ["", "--direct_transfer=True", "--use_side_users=False"]  # "": the full model
    ablation = _rows((root / "out" / "tiny" / "ablation.md").read_text())
    assert list(ablation) == [
        "MuSiC (full, interaction vectors)",
        "direct transfer (ours)",
        "w/o side",
    ]
    with pytest.raises(SystemExit):
        cli.parse_args([*argv, "--variants", "w/o everything"])  # names no row


def test_flags_and_skipped_tasks(root, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--seed=3"])  # the grid sets the seed itself
    with pytest.raises(SystemExit):
        cli.parse_args(["--tables=main,figure"])
    args = cli.parse_args(["--betas", "0.2,0.5", "--seeds", "1", "2", "--learning_rate=0.01"])
    assert args.betas == [0.2, 0.5] and args.seeds == [1, 2] and args.steps_betas == [0.2, 0.5]
    assert args.overrides == ("--learning_rate=0.01",)
    assert "CMF" in args.models and "MuSiC" in args.models

    calls = _fake_runs(monkeypatch, lambda model, opts: {"ndcg@20": 0.1})
    argv = [f"--cwd={root}", f"--shared-data={root / 'no_data'}", "--tables=main"]
    assert cli.main(["--tasks=food_kitchen,nowhere", *argv]) == 1
    out = capsys.readouterr().out
    assert "skip task food_kitchen: its raw data is absent" in out
    assert "skip task nowhere: no dataset folder" in out
    assert not calls


def test_reverse_direction_is_built_from_shared_data(root, monkeypatch, capsys):
    raw = root / "shared" / "food_kitchen"
    raw.mkdir(parents=True)
    lines = ["user_id\titem_id\tdomain\tposition\tuser_group"]
    for u in range(12):
        group = "overlap_train" if u < 8 else "kitchen_only"
        for p, (domain, item) in enumerate(
            [("food", f"F{(u + k) % 6}") for k in range(3) if u < 8]
            + [("kitchen", f"K{(u * 2 + k) % 9}") for k in range(4)]
        ):
            lines.append(f"{group}:{u}\t{item}\t{domain}\t{p}\t{group}")
    (raw / "interactions.tsv").write_text("\n".join(lines) + "\n")
    items = ["item_id\tdomain\ttitle"]
    items += [f"F{i}\tfood\tfood item {i}" for i in range(6)]
    items += [f"K{i}\tkitchen\tkitchen item {i}" for i in range(9)]
    (raw / "items.tsv").write_text("\n".join(items) + "\n")

    calls = _fake_runs(monkeypatch, lambda model, opts: {"ndcg@20": 0.1, "recall@20": 0.2})
    argv = [
        "--tasks=kitchen_food",
        f"--cwd={root}",
        f"--shared-data={root / 'shared'}",
        f"--work={root / 'work'}",
        f"--out={root / 'out'}",
        "--models=GlobalMean,ItemMean",
        "--tables=main",
        "--betas=0.5",
        "--seeds=1",
    ]
    assert cli.main(argv) == 0
    build = json.loads((root / "dataset" / "kitchen_food" / "build.json").read_text())
    assert build["generated"] is False
    assert build["inputs"]["aux"]["where"] == {"domain": "kitchen"}
    assert build["inputs"]["target"]["where"] == {"domain": "food"}
    assert "skip GlobalMean (predicts ratings only" in capsys.readouterr().out
    assert [c[2] for c in calls] == ["--model=ItemMean"]
    main_md = (root / "out" / "kitchen_food" / "main.md").read_text()
    assert "(kitchen → food, implicit feedback) — **real data**" in main_md
    header = main_md.split("| model |")[1].splitlines()[0]
    assert "NDCG@20" in header and "MAE" not in header  # implicit: ranking metrics only


def test_jobs_run_cells_at_once_with_the_same_tables(root, monkeypatch):
    import threading
    import time

    running, peak, lock = [0], [0], threading.Lock()
    values = {"A": 0.9, "B": 1.0, "MuSiC": 0.8}

    def metrics(model, opts):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)  # long enough for a second worker to start its cell meanwhile
        with lock:
            running[0] -= 1
        return {"mae": values[model], "rmse": values[model] + int(opts["seed"]) / 100}

    calls = _fake_runs(monkeypatch, metrics)
    argv = _argv(root, "--models=A,B,MuSiC", "--tables=main", "--seeds=1,2", "--metrics=mae,rmse")
    assert cli.main([*argv, "--jobs=3"]) == 0
    assert len(calls) == 6 and peak[0] >= 2
    parallel = (root / "out" / "tiny" / "main.md").read_text()
    # one by one from scratch: the same table (the wall time line aside)
    for folder in ("work", "out"):
        subprocess.run(["rm", "-rf", str(root / folder)], check=True)
    peak[0] = 0
    assert cli.main(argv) == 0
    assert peak[0] == 1
    serial = (root / "out" / "tiny" / "main.md").read_text()
    # the same rows and values (the s/run column aside: timings differ)
    table = lambda text: {k: v[:-1] for k, v in _rows(text).items()}  # noqa: E731
    assert table(parallel) == table(serial) and len(table(serial)) == 4
    assert _rows(serial)["MuSiC"][0].startswith("**0.8000")


def test_model_arg_reaches_only_its_model_and_is_noted(root, monkeypatch, best_candidate_default):
    seen = []

    def metrics(model, opts):
        seen.append(opts)
        return {"mae": 0.9, "rmse": 1.0}

    _fake_runs(monkeypatch, metrics)
    argv = _argv(root, "--models=TargetMF,MuSiC", "--tables=main,ablation", "--metrics=mae,rmse")
    assert cli.main([*argv, "--model-arg=MuSiC:learning_rate=0.01"]) == 0
    music = [o for o in seen if o["model"] == "MuSiC"]
    # full, w/o interaction vectors, w/o diffusion, direct transfer, w/o side
    assert len(music) == 5 and all(o["learning_rate"] == "0.01" for o in music)
    assert all("learning_rate" not in o for o in seen if o["model"] == "TargetMF")
    assert "MuSiC alone: `--learning_rate=0.01`" in (root / "out" / "tiny" / "main.md").read_text()
    with pytest.raises(SystemExit):
        cli.parse_args([*argv, "--model-arg=MuSiC:seed=3"])  # the grid's own key
    with pytest.raises(SystemExit):
        cli.parse_args([*argv, "--model-arg=learning_rate=0.01"])  # no model


def test_the_full_music_row_is_what_its_defaults_run():
    """Explicit data with content tables: the multimodal features (the paper's); implicit data,
    with or without content tables: no override, so ``feature_source: auto`` reads the
    interaction vectors, and the content vectors are a row of their own where they exist."""
    from comparison.plan import music_variants
    from comparison.tasks import Task

    def rows(feedback, has_features):
        task = Task("t", Path("."), {}, feedback, [], has_features)
        return dict(music_variants(task))

    explicit = rows("explicit", True)
    assert explicit["MuSiC (full)"] == ("--feature_source=multimodal",)
    assert explicit["w/o MLLM"] == ("--feature_source=collaborative",)
    for has_features in (True, False):
        implicit = rows("implicit", has_features)
        assert implicit["MuSiC (full, interaction vectors)"] == ()
        assert implicit["w/o interaction vectors (ID embeddings)"] == (
            "--feature_source=collaborative",
        )
        content = "content vectors instead (the paper's features)"
        assert (content in implicit) is has_features
    assert "w/o MLLM" not in rows("explicit", False)


def test_dual_cold_start_table_runs_every_model_with_held_out_items_at_its_own_beta(
    root, monkeypatch
):
    def metrics(model, opts):
        held_out = "cold_item_ratio" in opts
        return {"mae": 0.9, "rmse": (1.3 if held_out else 1.0) - (model == "MuSiC") / 10}

    calls = _fake_runs(monkeypatch, metrics)
    argv = _argv(root, "--models=ItemMean,MuSiC", "--tables=main,dual", "--metrics=mae,rmse")
    assert cli.main([*argv, "--dual-betas=0.5", "--cold-item-ratio=0.3"]) == 0
    dual = [dict(a[2:].split("=", 1) for a in c[2:] if a.startswith("--")) for c in calls]
    dual = [o for o in dual if "cold_item_ratio" in o]
    assert sorted(o["model"] for o in dual) == ["ItemMean", "MuSiC"]
    assert {(o["cold_ratio"], o["cold_item_ratio"]) for o in dual} == {("0.5", "0.3")}
    assert len(calls) == 4  # main at β = 20 % and dual at 50 %: no cell shared
    text = (root / "out" / "tiny" / "dual.md").read_text()
    assert "paper Table 4" in text and "`--cold_item_ratio=0.3`" in text
    rows = _rows(text)
    assert rows["ItemMean"][1].startswith("1.3000") and rows["MuSiC"][1].startswith("**1.2000")
    assert "*MuSiC vs best other*" in rows
    with pytest.raises(SystemExit):
        cli.parse_args([*argv, "--cold-item-ratio=1.5"])
    # every run seed by seed, validation and test, beside the mean ± std tables
    cells = _read_csv(root / "out" / "tiny" / "dual_cells.csv")
    assert cells[0][:3] == ["model", "beta", "seed"] and "test/rmse" in cells[0]
    assert sorted((c[0], c[1], c[2]) for c in cells[1:]) == [
        ("ItemMean", "0.5", "1"),
        ("MuSiC", "0.5", "1"),
    ]
    assert "(dual_cells.csv)" in text
    # tiny has no content tables: MuSiC ranks with interaction vectors, a new item by fallback
    assert "MuSiC's features: **interaction vectors**" in text
    assert "no content tables in `dataset/tiny/features/` to map it from" in text


def test_a_review_based_model_is_not_applicable_without_review_text(root, monkeypatch, capsys):
    reviewed = write_tiny_cross_domain(root / "dataset", "tiny_reviews", reviews=True)
    (reviewed / "build.json").write_text(json.dumps({"generated": True, "feedback": "explicit"}))
    # built from interactions alone: a review file with its header only
    header = "user_id:token\titem_id:token\tdomain:token\ttext:token_seq\n"
    (root / "dataset" / "tiny" / "tiny.review").write_text(header)
    calls = _fake_runs(monkeypatch, lambda model, opts: {"rmse": 1.0, "ndcg@20": 0.1})
    argv = _argv(root, "--models=TargetMF,CATN", "--tables", "main", "dual")
    argv[0] = "--tasks=tiny,tiny_reviews"
    assert cli.main(argv) == 0
    models = [
        (opt.split("=", 1)[1], data.split("=", 1)[1])
        for c in calls
        for opt in c
        if opt.startswith("--model=")
        for data in c
        if data.startswith("--dataset=")
    ]
    assert ("CATN", "tiny_reviews") in models and ("CATN", "tiny") not in models
    assert ("TargetMF", "tiny") in models
    assert "tiny: CATN not applicable (the data has no review text)" in capsys.readouterr().out
    for name in ("main", "dual"):  # both tables say so, not just leave the row out
        table = (root / "out" / "tiny" / f"{name}.md").read_text()
        assert "CATN: not applicable, the data has no review text." in table


def test_planning_a_comparison_does_not_import_torch():
    # --report-only and planning read files only; torch would cost seconds per call
    code = "import sys; import comparison.cli; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO / "bench", capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_papers_music_is_a_row_of_the_main_table(root, monkeypatch):
    calls = _fake_runs(monkeypatch, lambda model, opts: {"rmse": 1.0, "ndcg@20": 0.1})
    assert cli.main(_argv(root, "--models=TargetMF,MuSiC", "--tables=main", "--paper-row")) == 0
    paper = [c for c in calls if "--config_files=properties/model/MuSiC-paper.yaml" in c]
    assert len(paper) == 1 and "--model=MuSiC" in paper[0]
    rows = _rows((root / "out" / "tiny" / "main.md").read_text())
    assert {"TargetMF", "MuSiC", "MuSiC (paper)"} <= set(rows)


def test_cells_from_csv_rebuild_a_table_with_new_rows_without_rerunning_the_old(root, monkeypatch):
    metrics = {"TargetMF": 1.0, "MuSiC": 0.9, "CMF": 1.1}
    calls = _fake_runs(monkeypatch, lambda model, opts: {"rmse": metrics[model]})
    assert cli.main(_argv(root, "--models=TargetMF,MuSiC", "--tables=main")) == 0
    assert len(calls) == 2
    folder = root / "out" / "tiny"
    before = _rows((folder / "main.md").read_text())
    # a fresh machine: the cache is gone, the committed per-seed cells remain
    shutil.rmtree(root / "work")
    calls.clear()
    argv = _argv(root, "--models=TargetMF,MuSiC,CMF", "--tables=main", "--cells-from-csv")
    assert cli.main(argv) == 0
    assert [c for c in calls if "--model=CMF" in c] == calls and len(calls) == 1  # only the new
    after = _rows((folder / "main.md").read_text())
    assert after["TargetMF"] == before["TargetMF"] and after["MuSiC"] == before["MuSiC"]
    assert after["CMF"][0].startswith("1.1000")  # the new row's RMSE
    text = (folder / "main.md").read_text()
    assert "2 of the 3 runs were read from the committed main_cells.csv" in text
    cells = _read_csv(folder / "main_cells.csv")
    assert sorted(r[0] for r in cells[1:]) == ["CMF", "MuSiC", "TargetMF"]
    # a line of another seed is not taken for this one
    calls.clear()
    assert cli.main([*argv[:-1], "--seeds=2", "--cells-from-csv"]) == 0
    assert len(calls) == 3


def _fake_records(monkeypatch, record_of) -> list[list[str]]:
    """Replace the subprocess by a stub whose result JSON has RMSE 1.0 and the run record
    ``record_of(options)``; every model counts as registered. Returns the commands run."""
    calls: list[list[str]] = []

    def fake(command, cwd, log):
        calls.append(command)
        opts = dict(a[2:].split("=", 1) for a in command[2:] if a.startswith("--"))
        record = {"model_selection": "best epoch", **record_of(opts)}
        payload = {"valid": {"rmse": 1.0}, "test": {"rmse": 1.0}, "run": record}
        Path(opts["result_json"]).write_text(json.dumps(payload))
        return 0

    monkeypatch.setattr(_grid, "execute", fake)
    monkeypatch.setattr(run, "unavailable_reason", lambda model: None)
    return calls


def _cells_survive_a_fresh_machine(root, monkeypatch, run_of_model, check):
    """Run TargetMF and CMF through a fake executor whose result JSON carries
    ``run_of_model(model)``, check the report, then delete the cache (a fresh machine) and
    check that the same report comes back from the committed cells CSV without a run."""
    calls = _fake_records(
        monkeypatch, lambda opts: {"best_epoch": 1, **run_of_model(opts["model"])}
    )
    argv = _argv(root, "--models=TargetMF,CMF", "--tables=main", "--cells-from-csv")
    folder = root / "out" / "tiny"
    assert cli.main(argv) == 0
    check(folder)
    shutil.rmtree(root / "work")
    calls.clear()
    assert cli.main(argv) == 0 and not calls
    check(folder)


def test_a_narrower_rebuild_keeps_the_cells_it_did_not_plan(root, monkeypatch):
    """Rebuilding a table with fewer models (or a row the data cannot have) rewrites its cells
    CSV without losing the other rows' committed lines; the table names them, and planning them
    again takes them back instead of doubling them."""
    calls = _fake_records(monkeypatch, lambda opts: {"best_epoch": 1})
    argv = _argv(root, "--tables=main", "--cells-from-csv")
    assert cli.main([*argv, "--models=TargetMF,CMF"]) == 0 and len(calls) == 2
    path = root / "out" / "tiny" / "main_cells.csv"
    before = _read_csv(path)
    shutil.rmtree(root / "work")  # a fresh machine: the committed CSV alone
    assert cli.main([*argv, "--models=TargetMF", "--report-only"]) == 0
    after = _read_csv(path)
    assert sorted(after) == sorted(before)  # the CMF line kept, unchanged
    text = (root / "out" / "tiny" / "main.md").read_text()
    assert "main_cells.csv also keeps 1 earlier lines" in text and "CMF (1)" in text
    assert "| CMF |" not in text
    calls.clear()
    assert cli.main([*argv, "--models=TargetMF,CMF"]) == 0 and not calls
    assert sorted(_read_csv(path)) == sorted(before)
    assert "also keeps" not in (root / "out" / "tiny" / "main.md").read_text()


def test_a_run_that_ended_at_its_epoch_limit_is_marked_and_survives_the_cells_csv(
    root, monkeypatch
):
    def run_of_model(model):
        return {"stopped_by": "epoch limit" if model == "CMF" else "early stopping"}

    def check(folder):
        text = (folder / "main.md").read_text()
        assert "| CMF ‡ |" in text and "| TargetMF |" in text  # only the row at its limit
        assert "ended at their epoch limit" in text and "CMF 1" in text
        cells = {r[0]: r for r in _read_csv(folder / "main_cells.csv")}
        column = cells["model"].index("stopped_by")
        assert cells["CMF"][column] == "epoch limit"
        assert cells["TargetMF"][column] == "early stopping"

    _cells_survive_a_fresh_machine(root, monkeypatch, run_of_model, check)


def test_a_composed_cell_is_noted_and_survives_the_cells_csv(root, monkeypatch):
    def run_of_model(model):  # CMF as a cell put together from a search's candidates
        return {"composed_from": "the candidates' own runs"} if model == "CMF" else {}

    def check(folder):
        text = (folder / "main.md").read_text()
        assert "Composed cells: CMF 1." in text and "TargetMF 1" not in text
        cells = {r[0]: r for r in _read_csv(folder / "main_cells.csv")}
        column = cells["model"].index("composed")
        assert cells["CMF"][column] == "composed" and cells["TargetMF"][column] == ""

    _cells_survive_a_fresh_machine(root, monkeypatch, run_of_model, check)


def test_ablation_variants_train_at_the_sizes_the_full_model_chose(root, monkeypatch):
    chosen = {
        "interaction_vector_dim": 128,
        "embedding_size": 64,
        "interaction_vector_normalization": "symmetric_readout",
    }
    candidates = [{"settings": chosen, "chosen": True}, {"settings": {}, "chosen": False}]

    def record_of(opts):  # the full model searches, its variants do not
        searched = "interaction_size_search" not in opts
        return {"size_search": candidates} if searched else {}

    calls = _fake_records(monkeypatch, record_of)
    argv = _argv(root, "--models=MuSiC", "--tables=ablation", "--cells-from-csv")
    # --report-only before anything ran: the variants wait for the full model, nothing runs
    assert cli.main([*argv, "--report-only"]) == 0 and not calls
    assert cli.main(argv) == 0
    sizes = ["--interaction_size_search=[]", *(f"--{k}={v}" for k, v in chosen.items())]
    assert len(calls) == 5  # the full model first, then its four variants
    assert not any(s in calls[0] for s in sizes)
    assert all(all(s in command for s in sizes) for command in calls[1:])
    folder = root / "out" / "tiny"
    cells = {r[0]: r for r in _read_csv(folder / "ablation_cells.csv")}
    column = cells["variant"].index("chosen")
    text = "interaction_vector_dim=128;embedding_size=64;interaction_vector_normalization=symmetric_readout"
    assert cells["MuSiC (full, interaction vectors)"][column] == text
    assert cells["w/o side"][column] == ""  # the variants searched nothing
    assert "train at the sizes its size search chose" in (folder / "ablation.md").read_text()
    # a fresh machine: the full model's choice comes back from the CSV, so do its variants' cells
    before = (folder / "ablation_cells.csv").read_text()
    shutil.rmtree(root / "work")
    calls.clear()
    assert cli.main(argv) == 0 and not calls
    assert (folder / "ablation_cells.csv").read_text() == before


def test_a_variant_on_id_embeddings_leaves_out_the_chosen_history_settings(root, monkeypatch):
    """The full model chose a candidate with history-vector settings: every variant trains at
    its sizes, and the one on ID embeddings (no history vectors; MuSiC refuses a
    history_dropout there) without those settings."""
    history = {"history_vector_scale": "sqrt", "history_dropout": 0.5}
    chosen = {"interaction_vector_dim": 128, "embedding_size": 64, **history}
    candidates = [{"settings": chosen, "chosen": True}]

    def record_of(opts):
        return {"size_search": candidates} if "interaction_size_search" not in opts else {}

    calls = _fake_records(monkeypatch, record_of)
    assert cli.main(_argv(root, "--models=MuSiC", "--tables=ablation")) == 0
    history_flags = [f"--{k}={v}" for k, v in history.items()]
    variants = calls[1:]
    on_ids = [c for c in variants if "--feature_source=collaborative" in c]
    assert len(variants) == 4 and len(on_ids) == 1
    assert "--embedding_size=64" in on_ids[0]
    assert not any(flag in on_ids[0] for flag in history_flags)
    for command in variants:
        if command is not on_ids[0]:
            assert all(flag in command for flag in history_flags)


CANDIDATE = "interaction_vector_dim=128;embedding_size=64"


def _fake_search(monkeypatch, valid_of, chosen=None) -> list[list[str]]:
    """A stub executor for MuSiC's size search: a run with its search on records ``chosen``
    as its choice, a run with fixed sizes none; validation RMSE ``valid_of(opts)`` (test RMSE
    0.1 lower). Returns the commands run."""
    calls: list[list[str]] = []
    chosen = chosen or {"interaction_vector_dim": 64, "embedding_size": 32}

    def fake(command, cwd, log):
        calls.append(command)
        opts = dict(a[2:].split("=", 1) for a in command[2:] if a.startswith("--"))
        record = {"model_selection": "best epoch", "best_epoch": 3, "valid_metric": "RMSE"}
        if "interaction_size_search" not in opts:
            record["size_search"] = [{"settings": chosen, "chosen": True}]
        rmse = valid_of(opts)
        payload = {"valid": {"rmse": rmse}, "test": {"rmse": rmse - 0.1}, "run": record}
        Path(opts["result_json"]).write_text(json.dumps(payload))
        return 0

    monkeypatch.setattr(_grid, "execute", fake)
    monkeypatch.setattr(run, "unavailable_reason", lambda model: None)
    return calls


def test_compose_candidate_keeps_the_better_on_validation_and_never_composes_twice(
    root, monkeypatch, best_candidate_default
):
    """Seed 1: the candidate's validation RMSE is lower, it replaces the cell; seed 2: a tie,
    the earlier choice stays. Both count both runs' seconds and say which candidate joined; a
    second composing, here or on a fresh machine from the cells CSV, runs and changes nothing."""

    def valid_of(opts):
        if opts.get("interaction_size_search") == "[]":  # the candidate's own run
            return 0.9 if opts["seed"] == "1" else 1.0
        return 1.0

    calls = _fake_search(monkeypatch, valid_of)
    argv = _argv(root, "--models=MuSiC", "--tables=main", "--seeds=1,2", "--cells-from-csv")
    assert cli.main(argv) == 0 and len(calls) == 2  # the two searching cells
    for cached in (root / "work" / "tiny").glob("*.json"):  # as if each search took 100 s
        cached.write_text(json.dumps({**json.loads(cached.read_text()), "seconds": 100.0}))
    calls.clear()
    assert cli.main([*argv, f"--compose-candidate={CANDIDATE}"]) == 0
    assert len(calls) == 2  # the candidate's own run per seed, nothing else
    assert all("--interaction_vector_dim=128" in c and "--embedding_size=64" in c for c in calls)
    assert all("--interaction_size_search=[]" in c for c in calls)
    path = root / "out" / "tiny" / "main_cells.csv"
    lines = {r[2]: r for r in _read_csv(path)}
    header = lines["seed"]
    col = {name: header.index(name) for name in header}
    assert lines["1"][col["valid/rmse"]] == "0.900000"  # the candidate's cell
    assert lines["1"][col["test/rmse"]] == "0.800000"
    assert lines["1"][col["chosen"]] == CANDIDATE
    assert lines["2"][col["valid/rmse"]] == "1.000000"  # a tie keeps the earlier choice
    assert lines["2"][col["chosen"]] == "interaction_vector_dim=64;embedding_size=32"
    for seed in ("1", "2"):
        assert lines[seed][col["composed"]] == f"composed with {CANDIDATE}"
        candidate_seconds = float(lines[seed][col["seconds"]]) - 100.0  # the search's, plus
        assert 0 <= candidate_seconds < 30  # the candidate's own run (a stub: instant)
    assert "Composed cells: MuSiC 2." in (root / "out" / "tiny" / "main.md").read_text()
    before = path.read_text()
    calls.clear()
    assert cli.main([*argv, f"--compose-candidate={CANDIDATE}"]) == 0
    assert not calls and path.read_text() == before
    shutil.rmtree(root / "work")  # a fresh machine: the committed CSV alone
    assert cli.main([*argv, f"--compose-candidate={CANDIDATE}"]) == 0
    assert not calls and path.read_text() == before


def test_after_composing_the_variants_train_at_the_new_choice(root, monkeypatch):
    """The full model's choice moves to the candidate: its ablation variants run again at the
    candidate's sizes instead of being read from the cells CSV lines trained at the old one."""

    def valid_of(opts):
        return 0.9 if opts.get("interaction_vector_dim") == "128" else 1.0

    calls = _fake_search(monkeypatch, valid_of)
    argv = _argv(root, "--models=MuSiC", "--tables=ablation", "--cells-from-csv")
    assert cli.main(argv) == 0 and len(calls) == 5  # the full model, then its four variants
    assert all("--interaction_vector_dim=64" in c for c in calls[1:])
    shutil.rmtree(root / "work")  # a fresh machine: the old lines are in the CSV only
    calls.clear()
    assert cli.main([*argv, f"--compose-candidate={CANDIDATE}"]) == 0
    assert len(calls) == 5  # the candidate, then the four variants at its sizes
    assert all("--interaction_vector_dim=128" in c for c in calls)
    cells = {r[0]: r for r in _read_csv(root / "out" / "tiny" / "ablation_cells.csv")}
    column = cells["variant"].index("valid/rmse")
    assert all(line[column] == "0.900000" for row, line in cells.items() if row != "variant")


def test_compose_candidate_refuses_a_malformed_candidate(root, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(_argv(root, "--models=MuSiC", "--compose-candidate=embedding_size"))
    assert stop.value.code == 2
    assert "expected key=value;key=value" in capsys.readouterr().err


def test_compose_candidate_leaves_a_cell_that_searched_nothing(root, monkeypatch, capsys):
    """A MuSiC run on content vectors (or without validation users) has no size search: the
    search would never train the candidate, so it is neither run nor composed in."""
    calls = _fake_records(monkeypatch, lambda opts: {})  # no run.size_search
    argv = _argv(root, "--models=MuSiC", "--tables=main", "--cells-from-csv")
    assert cli.main(argv) == 0 and len(calls) == 1
    before = (root / "out" / "tiny" / "main_cells.csv").read_text()
    calls.clear()
    assert cli.main([*argv, f"--compose-candidate={CANDIDATE}"]) == 0
    assert not calls
    assert "not composed: its run searched no sizes" in capsys.readouterr().out
    assert (root / "out" / "tiny" / "main_cells.csv").read_text() == before


def test_compose_candidate_leaves_a_cell_whose_search_averaged_untrained(root, monkeypatch, capsys):
    """A search that selected an average of candidates (size_search_average) cannot take one
    more by composition: the cell is refused before its candidate's run is trained."""
    averaged = [{"settings": {"interaction_vector_dim": 64}, "chosen": True, "averaged": True}]
    calls = _fake_records(
        monkeypatch,
        lambda opts: {} if "interaction_size_search" in opts else {"size_search": averaged},
    )
    argv = _argv(root, "--models=MuSiC", "--tables=main", "--cells-from-csv")
    assert cli.main(argv) == 0 and len(calls) == 1
    calls.clear()
    assert cli.main([*argv, f"--compose-candidate={CANDIDATE}"]) == 0
    assert not calls  # the candidate was not trained
    assert "not composed: its search averaged candidates" in capsys.readouterr().out


def test_a_single_run_shows_its_value_without_a_spread():
    """One seed has no standard deviation to show: "± 0.0000" would read as a measured one."""
    assert _grid.fmt_stat(_grid.Stat(0.05491, 0.0, 1)) == "0.0549"
    assert _grid.fmt_stat(_grid.Stat(0.05491, 0.0, 3), bold=True) == "**0.0549 ± 0.0000**"
    assert _grid.fmt_stat(None) == "n/a"
