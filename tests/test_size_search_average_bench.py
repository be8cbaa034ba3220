"""bench/size_search_average.py: the best candidate and the selected average composed from
candidate runs' checkpoints, on a tiny split; and the grid keeping a cell's checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from recbole_music.quick_start import result_payload, run_recbole_music

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import _grid  # noqa: E402
import size_search_average  # noqa: E402

OVERRIDES = ("--feature_source=interactions", "--user_vectors=history")
FAST = {"epochs": 3, "stage1_epochs": 1, "state": "ERROR", "show_progress": False}


def test_composes_the_plain_choice_and_the_selected_average(tiny_data_root):
    candidates = size_search_average.candidates_of("tiny", OVERRIDES, 0.2, 1)
    assert candidates[0] == {
        "embedding_size": 32,
        "interaction_vector_dim": 64,
        "interaction_vector_normalization": "none",
    }
    assert len(candidates) == 4  # the dropout entry cannot apply to explicit data
    runs = []
    for index, settings in enumerate(candidates[:3]):
        config = {
            **FAST,
            "feature_source": "interactions",
            "user_vectors": "history",
            "interaction_size_search": [],
            **settings,
            "seed": 1,
        }
        result = run_recbole_music("MuSiC", "tiny", config_dict=config, saved=True)
        runs.append((settings, {**result_payload(result), "seconds": 10.0 + index}))
    outcome = size_search_average.compose("ratings_only", "tiny", OVERRIDES, 0.2, 1, runs)
    best, average = outcome.answers
    rmse = [run["valid"]["rmse"] for _, run in runs]
    chosen = rmse.index(min(rmse))  # RMSE: smaller is better; a tie keeps the earlier
    assert best.test == runs[chosen][1]["test"] and best.candidates == 3
    assert best.members == [size_search_average.label_of(candidates[chosen])]
    assert average.members[0] == best.members[0]
    assert average.valid["rmse"] <= best.valid["rmse"]
    if len(average.members) == 1:  # the best alone: its own test result again
        assert average.test["rmse"] == pytest.approx(best.test["rmse"], abs=1e-4)
    assert "rmse" in outcome.metrics and "mae" in outcome.metrics
    assert best.seconds == average.seconds == 33.0  # every candidate run counts
    # the cells CSV holds what the report needs: a committed cell is read back, not rerun
    path = tiny_data_root / "cells.csv"
    size_search_average.write_cells([outcome], path)
    (again,) = size_search_average.read_cells(path)
    assert again.metrics == outcome.metrics
    for old, new in zip(outcome.answers, again.answers):
        assert (new.row, new.members, new.candidates, new.seconds) == (
            old.row,
            old.members,
            old.candidates,
            old.seconds,
        )
        assert new.test == pytest.approx({m: round(old.test[m], 4) for m in outcome.metrics})
    text = size_search_average.report([again], ["python bench/size_search_average.py"])
    assert "## ratings_only (real data), β = 0.2, seeds [1]" in text
    assert "- seed 1: (MuSiC's candidate runs: 33 s in all)" in text


def test_the_counterpart_is_the_baselines_own_search_and_its_grid_average(tiny_data_root):
    chosen, average = size_search_average.grid_counterpart(
        "SVDTransfer", "tiny_implicit", (), 0.2, 1
    )
    alone = run_recbole_music(
        "SVDTransfer", "tiny_implicit", config_dict={"seed": 1, "state": "ERROR"}, saved=False
    )
    assert chosen.test["ndcg@20"] == pytest.approx(alone["test_result"]["ndcg@20"], abs=1e-4)
    assert chosen.valid["ndcg@20"] == pytest.approx(alone["best_valid_score"], abs=1e-4)
    assert average.members[0] == chosen.members[0] and average.candidates == chosen.candidates
    assert average.valid["ndcg@20"] >= chosen.valid["ndcg@20"]


def test_a_cell_keeps_its_checkpoint_when_asked(tmp_path, monkeypatch):
    def fake(command, cwd, log):
        scratch = Path(next(a for a in command if a.startswith("--checkpoint_dir=")).split("=")[1])
        scratch.mkdir(parents=True)
        (scratch / "MuSiC-1.pth").write_bytes(b"weights")
        out = Path(next(a for a in command if a.startswith("--result_json=")).split("=")[1])
        run = {"checkpoint": str(scratch / "MuSiC-1.pth")}
        out.write_text(json.dumps({"valid": {}, "test": {}, "run": run}))
        return 0

    monkeypatch.setattr(_grid, "execute", fake)
    cell = _grid.Cell("tiny", "MuSiC", 0.2, 1)
    path = tmp_path / cell.filename()
    result = _grid.run_cell(cell, path, keep_checkpoint=True)
    kept = _grid.checkpoint_path(path)
    assert kept.read_bytes() == b"weights" and result["run"]["checkpoint"] == str(kept)
    assert json.loads(path.read_text())["run"]["checkpoint"] == str(kept)
    other = _grid.Cell("tiny", "MuSiC", 0.2, 2)
    dropped = _grid.run_cell(other, tmp_path / other.filename())
    assert not _grid.checkpoint_path(tmp_path / other.filename()).exists()
    assert not Path(dropped["run"]["checkpoint"]).exists()  # gone with the working folder


def test_a_cell_whose_search_averaged_is_not_composed_with_a_candidate():
    from comparison.compose import compose

    rows = [
        {"settings": {"embedding_size": 32}, "valid_score": 0.5, "chosen": True, "averaged": True},
        {"settings": {"embedding_size": 16}, "valid_score": 0.4, "chosen": False, "averaged": True},
    ]
    averaged = {"valid": {"ndcg@20": 0.6}, "run": {"size_search": rows}}
    candidate = {"valid": {"ndcg@20": 0.7}, "run": {}}
    cell = _grid.Cell("tiny", "MuSiC", 0.2, 1)
    with pytest.raises(ValueError, match="averaged candidates"):
        compose(None, averaged, candidate, cell, {"embedding_size": 64})
    rows[1]["averaged"] = False  # the best alone was selected: still not a plain search
    with pytest.raises(ValueError, match="averaged candidates"):
        compose(None, averaged, candidate, cell, {"embedding_size": 64})


def test_a_write_interrupted_midway_leaves_the_previous_file(tmp_path):
    """The benches' cells CSVs and reports are replaced whole: an error (or a kill) while the
    new text is being written leaves the old file and no stray temporary."""
    path = tmp_path / "cells.csv"
    _grid.write_text_atomic("old\n", path)
    with pytest.raises(RuntimeError), _grid.atomic_writer(path, newline="") as handle:
        handle.write("new, half")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["cells.csv"]
    _grid.write_text_atomic("new\n", path)
    assert path.read_text() == "new\n"
