"""Shared by the grid benchmark (compare.py): one cell = one run of
``run_recbole_music.py`` in a subprocess, its result JSON cached; mean ± std tables.

A cell is (dataset, model, RecBole overrides, β, seed). Its JSON is written only once the run
has finished (atomically), so a cached file is always a complete result and an interrupted grid
resumes where it stopped. Each run's checkpoints go to a working folder beside the cell file,
``.<cell>.partial/``, deleted once the cell is cached (a grid of hundreds of runs would otherwise
fill ``saved/``); it holds the run's ``resume_dir`` too, so a cell interrupted mid-training (a
killed grid, a reboot) continues from its last epoch when the grid runs again, with the numbers
an uninterrupted run gives.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _paths import ROOT

from dataset_prep.layout import BUILD_RECORD

SMALLER_IS_BETTER = {"mae", "rmse"}
# Overrides a cell sets itself; a user's extra overrides may not set them again.
RESERVED = {
    "model",
    "dataset",
    "cold_ratio",
    "cold_item_ratio",
    "seed",
    "result_json",
    "checkpoint_dir",
}


# How a resumed cell's seconds were counted (the result's key), and its value when the earlier
# tries' time is unknown.
SECONDS_COUNTED = "seconds_counted"
LAST_TRY_ONLY = "the last try only"


def smaller_is_better(metric: str) -> bool:
    return metric.split("@")[0].lower() in SMALLER_IS_BETTER


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


class CellFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Cell:
    """One run: ``run_recbole_music.py --model=M --dataset=D --cold_ratio=β --seed=s *overrides``."""

    dataset: str
    model: str
    beta: float
    seed: int
    overrides: tuple[str, ...] = ()

    def key(self) -> str:
        spec = json.dumps(
            [self.dataset, self.model, float(self.beta), int(self.seed), sorted(self.overrides)]
        )
        return hashlib.sha1(spec.encode()).hexdigest()[:10]

    def filename(self) -> str:
        """Readable and unique: the model, the overrides (shortened), β, seed, the spec hash."""
        opts = slug("_".join(o.lstrip("-") for o in sorted(self.overrides)))[:60]
        parts = [slug(self.model)] + ([opts] if opts else [])
        return "-".join(parts + [f"beta{self.beta:g}", f"seed{self.seed}", self.key()]) + ".json"

    def argv(self) -> list[str]:
        return [
            f"--model={self.model}",
            f"--dataset={self.dataset}",
            f"--cold_ratio={self.beta}",
            f"--seed={self.seed}",
            *self.overrides,
        ]

    def describe(self) -> str:
        extra = f" {' '.join(self.overrides)}" if self.overrides else ""
        return f"{self.model} β={self.beta:g} seed={self.seed}{extra}"


def execute(command: list[str], cwd: str | Path, log: Path) -> int:
    """Run one cell's command, its output appended to ``log`` as it comes (an hour-long run
    can be followed with ``tail -f``); the exit status. The seam the tests replace."""
    with open(log, "a") as handle:
        return subprocess.run(
            command, cwd=str(cwd), stdout=handle, stderr=subprocess.STDOUT
        ).returncode


def log_path(path: Path) -> Path:
    """The output of the run behind the cell cached at ``path``: written while it runs, kept
    after it (the run's epochs and warnings), the reason when it failed."""
    return path.with_suffix(".log")


def load_cell(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a damaged file is not a result: the cell runs again


@contextlib.contextmanager
def atomic_writer(path: Path, newline: str | None = None):
    """A text handle on a temporary sibling of ``path``, renamed onto it when the block ends
    without an error: a run killed mid-write leaves the previous file, never a truncated one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline=newline) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(text: str, path: Path) -> None:
    with atomic_writer(path) as handle:
        handle.write(text)


def write_json(payload: dict, path: Path) -> None:
    with atomic_writer(path) as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")


def checkpoint_path(path: Path) -> Path:
    """Where :func:`run_cell` keeps the checkpoint of the cell cached at ``path`` when asked to."""
    return path.with_suffix(".pth")


def run_cell(cell: Cell, path: Path, cwd: str | Path = ROOT, keep_checkpoint: bool = False) -> dict:
    """The cell's result: read from ``path`` when cached, else run and cache it there; with
    ``keep_checkpoint`` the run's checkpoint is kept beside it (:func:`checkpoint_path`, named
    in the result's ``run.checkpoint``) instead of being deleted with the working folder.

    Raises :class:`CellFailed` (the output's tail in the message; the whole output in
    :func:`log_path`) when the run fails; a failed cell is not cached and runs again next time.
    """
    cached = load_cell(path)
    if cached is not None:
        return cached
    scratch = partial_folder(path)
    resume_dir = scratch / "resume"
    resumed = resume_dir.is_dir() and any(resume_dir.iterdir())
    scratch.mkdir(parents=True, exist_ok=True)
    earlier = record_try(scratch, resume_dir, resumed)
    result_json = scratch / "result.json"
    result_json.unlink(missing_ok=True)
    command = [
        sys.executable,
        str(ROOT / "run_recbole_music.py"),
        *cell.argv(),
        f"--result_json={result_json}",
        f"--checkpoint_dir={scratch / 'saved'}",
        f"--resume_dir={resume_dir}",
        "--state=WARNING",
    ]
    log = log_path(path)
    if resumed:  # the earlier tries' output stays above
        with open(log, "a") as handle:
            handle.write(f"\n$ {' '.join(command)}  (resumes the try above)\n\n")
    else:
        log.write_text(f"$ {' '.join(command)}\n\n")
    start = time.perf_counter()
    returncode = execute(command, cwd, log)
    seconds = time.perf_counter() - start
    if returncode != 0 or not result_json.is_file():
        tail = log.read_text(errors="replace")[-3000:]
        raise CellFailed(  # the working folder stays: the next try resumes from it
            f"{cell.describe()} on {cell.dataset} failed (exit {returncode}; "
            f"full output in {log}):\n{tail}"
        )
    result = json.loads(result_json.read_text())
    result["seconds"] = seconds
    if resumed:
        result["resumed"] = True
        if earlier is None:  # a try before the tries were recorded
            result[SECONDS_COUNTED] = LAST_TRY_ONLY
        else:
            result["seconds"] += earlier
            result[SECONDS_COUNTED] = (
                f"every try: {earlier:.0f} s of earlier tries, each until the last training "
                "state it saved"
            )
    result["cell"] = {
        "dataset": cell.dataset,
        "model": cell.model,
        "beta": cell.beta,
        "seed": cell.seed,
        "overrides": list(cell.overrides),
        "command": "python run_recbole_music.py " + " ".join(cell.argv()),
    }
    saved = result.get("run", {}).get("checkpoint")
    if keep_checkpoint and saved and Path(saved).is_file():
        os.replace(saved, checkpoint_path(path))
        result["run"]["checkpoint"] = str(checkpoint_path(path))
    write_json(result, path)
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def record_try(scratch: Path, resume_dir: Path, resumed: bool) -> float | None:
    """Record in ``scratch`` that a try of the cell starts now; the seconds its earlier tries
    contributed. A try that was killed cannot say when it ended, so each counts from its start
    to the last training state it saved (the newest file in ``resume_dir``): what came after
    that is trained again, and counted in the try that does. None when an earlier try's start
    was not recorded (a working folder older than this record)."""
    record_path = scratch / "tries.json"
    record = load_cell(record_path) or {"tries": [], "unrecorded": resumed}
    tries = record["tries"]
    if tries and "seconds" not in tries[-1]:  # the try before this one
        saved = max((f.stat().st_mtime for f in resume_dir.rglob("*") if f.is_file()), default=0)
        tries[-1]["seconds"] = max(0.0, saved - tries[-1]["started"])
    tries.append({"started": time.time()})
    write_json(record, record_path)
    return None if record["unrecorded"] else sum(t["seconds"] for t in tries[:-1])


def partial_folder(path: Path) -> Path:
    """The working folder of the cell cached at ``path``: checkpoints and resume state."""
    return path.parent / f".{path.stem}.partial"


# --- statistics and tables --------------------------------------------------------------------


def summarise(values: list[float]) -> tuple[float, float]:
    """(mean, sample std); std is 0 for a single value."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


@dataclass
class Stat:
    mean: float
    std: float
    n: int


@dataclass
class Row:
    """One table row: a label and, per column key, the runs' metric values."""

    label: str
    values: dict = field(default_factory=dict)  # column key -> list[float]

    def stat(self, column) -> Stat | None:
        got = [v for v in self.values.get(column, []) if v is not None and not math.isnan(v)]
        if not got:
            return None
        mean, std = summarise(got)
        return Stat(mean, std, len(got))


def best_rows(rows: list[Row], columns: list, metric_of=lambda c: c) -> dict:
    """Column key -> label of the row with the best mean (lowest for MAE/RMSE), among the rows
    with the most runs in that column: a partial row's mean is not over the same seeds."""
    best = {}
    for column in columns:
        stats = {r.label: s for r in rows if (s := r.stat(column)) is not None}
        most = max((s.n for s in stats.values()), default=0)
        have = {label: s.mean for label, s in stats.items() if s.n == most}
        if have:
            pick = min if smaller_is_better(metric_of(column)) else max
            best[column] = pick(have, key=have.get)
    return best


def fmt_stat(stat: Stat | None, bold: bool = False, digits: int = 4) -> str:
    if stat is None:
        return "n/a"
    text = f"{stat.mean:.{digits}f}"
    if stat.n > 1:  # one run has no spread to show
        text += f" ± {stat.std:.{digits}f}"
    return f"**{text}**" if bold else text


def markdown_table(header: list[str], rows: list[list[str]], align_first_left=True) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + ("---|" if align_first_left else "---:|") + "---:|" * (len(header) - 1))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def relative_improvement(ours: float, other: float, metric: str) -> float | None:
    """Percent by which ``ours`` beats ``other``: positive = ours better, for either direction
    (MAE/RMSE: (other − ours) / other; the rest: (ours − other) / other)."""
    if other == 0:
        return None
    gain = (other - ours) if smaller_is_better(metric) else (ours - other)
    return 100.0 * gain / abs(other)


# --- dataset provenance -------------------------------------------------------------------------


def dataset_info(folder: Path) -> dict:
    """What the dataset folder says about itself: generated?, feedback, domains, source files."""
    name = folder.name
    info: dict = {"name": name, "folder": str(folder), "generated": None}
    build = folder / BUILD_RECORD
    if build.is_file():
        data = json.loads(build.read_text())
        info["generated"] = data.get("generated")
        info["feedback"] = data.get("feedback")
        inputs = data.get("inputs") or {}
        info["aux"] = (inputs.get("aux") or {}).get("label")
        info["target"] = (inputs.get("target") or {}).get("label")
        info["sources"] = sorted(
            {str(v.get("reviews")) for v in inputs.values() if isinstance(v, dict)} - {"None"}
        )
    yaml_path = folder / f"{name}.yaml"
    if yaml_path.is_file():
        import yaml

        data = yaml.safe_load(yaml_path.read_text()) or {}
        if info["generated"] is None and "generated" in data:
            info["generated"] = data["generated"]
        info["feedback"] = info.get("feedback") or data.get("feedback")
        info["aux"] = info.get("aux") or data.get("aux_domain")
        info["target"] = info.get("target") or data.get("target_domain")
    info["feedback"] = info.get("feedback") or "explicit"
    return info


def data_kind(info: dict) -> str:
    if info.get("generated") is True:
        return (
            "**GENERATED (synthetic) data** — the numbers show the pipeline works, not how "
            "models do on real data"
        )
    if info.get("generated") is False:
        return "**real data**"
    return f"**provenance unknown** (no `generated` flag in {BUILD_RECORD} or the dataset YAML)"
