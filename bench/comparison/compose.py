"""Composing MuSiC's cells with one more size-search candidate (``--compose-candidate``).

A MuSiC cell with interaction vectors trains every entry of ``interaction_size_search`` and
keeps the best on the validation users. When the default list gains an entry, rerunning every
cell would retrain the candidates it already compared; instead, each searching cell of the
table (cached, or read from the committed cells CSV) is set beside the new candidate's own run
(the same cell with ``--interaction_size_search=[]`` and the candidate's settings; a run of one
candidate equals that candidate inside a search, recbole_music/size_search.py) and the choice is
made as the search makes it: the candidate replaces the cell's result only where its validation
score is strictly better (a tie keeps the earlier choice). The composed cell counts both runs'
seconds, names them in ``run.composed_from`` and is written back to the cache, so the table's
Markdown and cells CSV carry it (the CSV's ``composed`` column). Composing twice with the same
candidate changes nothing.
"""

from __future__ import annotations

import copy

from _grid import Cell, smaller_is_better

from .catalogue import KEY_METRIC
from .plan import (
    Entry,
    chosen_settings,
    fixed_size_overrides,
    settings_of_text,
    settings_text,
)
from .tables import COMPOSED_KEY, composed_candidates
from .tasks import Task


def parse_candidate(text: str) -> dict:
    """``key=value;key=value`` (the cells CSV's ``chosen`` form) as settings; ValueError when
    empty or not of that form."""
    settings = settings_of_text(text)
    pieces = [p for p in text.split(";") if p.strip()]
    if not settings or len(settings) != len(pieces) or any(not k.strip() for k in settings):
        raise ValueError(
            f"--compose-candidate {text!r}: expected key=value;key=value, e.g. "
            "interaction_vector_dim=128;embedding_size=64;"
            "interaction_vector_normalization=symmetric_readout"
        )
    return {key.strip(): value for key, value in settings.items()}


def candidate_cell(cell: Cell, settings: dict) -> Cell:
    """The candidate's own run: the cell with no search, at the candidate's settings."""
    overrides = (*cell.overrides, *fixed_size_overrides(settings))
    return Cell(cell.dataset, cell.model, cell.beta, cell.seed, overrides)


def candidate_entries(entries: list[Entry], settings: dict) -> list[Entry]:
    """One entry per distinct cell of ``entries``: its candidate's run."""
    out: dict[str, Entry] = {}
    for entry in entries:
        cell = candidate_cell(entry.cell, settings)
        row = f"{entry.row} (candidate)"
        out.setdefault(cell.key(), Entry("candidate", row, entry.beta, entry.seed, cell))
    return list(out.values())


def selection_metric(task: Task, result: dict) -> str:
    """The metric the run's size search chose on (its ``valid_metric``; a line read from a cells
    CSV does not record it: the task's key metric, which is MuSiC's default valid_metric)."""
    named = str((result.get("run") or {}).get("valid_metric") or "").lower()
    return named or KEY_METRIC[task.feedback]


def has_met(result: dict, settings: dict) -> bool:
    """Whether the cell's search has met the candidate already: composed with it, or trained
    it as one of its own candidates (then composing changes nothing and its run is not needed)."""
    run = result.get("run") or {}
    searched = [c.get("settings") or {} for c in run.get("size_search") or []]
    return settings_text(settings) in composed_candidates(run) or any(
        all(str(s.get(k)) == str(v) for k, v in settings.items()) for s in searched
    )


def searched_an_average(result: dict) -> bool:
    """Whether the cell's search selected an average of candidates (size_search_average), not
    one: what a new candidate does to that average only a rerun of the cell can tell."""
    return any("averaged" in c for c in (result.get("run") or {}).get("size_search") or [])


AVERAGED_REFUSAL = (
    "its search averaged candidates (size_search_average); a candidate cannot be composed "
    "with it: rerun the cell with the new entry"
)


def compose(task: Task, base: dict, candidate: dict, base_cell: Cell, settings: dict) -> dict:
    """The cell's result once the candidate joins its search (one it has not met:
    :func:`has_met`); ValueError when either run has no validation score to choose on, or
    when the search averaged candidates (:func:`searched_an_average`)."""
    run = base.get("run") or {}
    if searched_an_average(base):
        raise ValueError(f"{base_cell.describe()}: {AVERAGED_REFUSAL}")
    earlier = run.get(COMPOSED_KEY)
    runs = list(earlier.get("runs", [])) if isinstance(earlier, dict) else []
    metric = selection_metric(task, base)
    old = (base.get("valid") or {}).get(metric)
    new = (candidate.get("valid") or {}).get(metric)
    if old is None or new is None:
        raise ValueError(f"{base_cell.describe()}: no validation {metric} to choose on")
    better = new < old if smaller_is_better(metric) else new > old
    composed = copy.deepcopy(candidate if better else base)
    composed_run = composed.setdefault("run", {})
    # the search's record: the earlier candidates, then this one; the chosen flag moves if it won
    search = [dict(c) for c in run.get("size_search") or []]
    if not search and (earlier_choice := chosen_settings(run)):
        search = [{"settings": earlier_choice, "chosen": True}]
    for entry in search:
        entry["chosen"] = bool(entry.get("chosen")) and not better
    search.append({"settings": dict(settings), "valid_score": new, "chosen": better})
    composed_run["size_search"] = search
    if not runs:
        runs = [{"cell": base_cell.filename(), "earlier": earlier or "the cell's own run"}]
    runs.append(
        {
            "cell": candidate_cell(base_cell, settings).filename(),
            "candidate": dict(settings),
            "chosen": better,
        }
    )
    composed_run[COMPOSED_KEY] = {
        "runs": runs,
        "chosen_on": f"validation {metric}, strictly better replaces (a tie keeps the earlier)",
        "seconds": "the sum of the runs' seconds",
    }
    composed["seconds"] = float(base.get("seconds") or 0.0) + float(candidate.get("seconds") or 0.0)
    for key in ("resumed", "seconds_counted"):  # the earlier run's count stays with the sum
        if key in base:
            composed[key] = base[key]
        else:
            composed.pop(key, None)
    return composed
