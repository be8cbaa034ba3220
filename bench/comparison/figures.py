"""Figures beside the tables (PNG, matplotlib's Agg backend): bars of the key metric per row with
error bars, one panel per β (main, ablation, activation), and lines over T per β (steps).

A figure is drawn from a :data:`Series` (row label → (β, metric) → (mean, std)), which a
:class:`~comparison.tables.Table` of cached cells gives and so does a table's CSV: the committed
tables get their figures back without their runs (``--figures-from-csv``).
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from pathlib import Path

from _grid import smaller_is_better, write_text_atomic

from .catalogue import KEY_METRIC, OURS, TITLES, beta_label, metric_label
from .tables import Table

Series = dict[str, dict[tuple[float, str], tuple[float, float]]]
BAR_TABLES = ("main", "ablation", "activation", "dual")
FIGURE_ALT = {
    "main": "Key metric per model",
    "ablation": "Key metric per MuSiC variant",
    "steps": "MuSiC vs diffusion steps T",
    "activation": "Key metric per activation",
    "dual": "Key metric per model, dual cold-start",
}


def series_of(table: Table) -> Series:
    return {
        row.label: {c: (s.mean, s.std) for c in table.columns if (s := row.stat(c)) is not None}
        for row in table.rows
    }


def read_csv_series(path: Path) -> Series:
    """A table's CSV (``<β>/<metric>/mean`` and ``/std`` columns) as a series; the improvement
    row (no seed count) is no series row."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, series = rows[0], {}
    for line in rows[1:]:
        if not line or not line[1]:
            continue
        values = {}
        for i, name in enumerate(header):
            beta, metric, part = (name.split("/") + ["", ""])[:3]
            if part == "mean" and line[i] and line[i + 1]:
                values[(float(beta), metric)] = (float(line[i]), float(line[i + 1]))
        series[line[0]] = values
    return series


def key_metric(series: Series, feedback: str | None = None) -> str | None:
    """The metric a bar figure shows: the feedback's key metric (RMSE explicit, NDCG@20
    implicit); without the feedback, the first of those the series has."""
    metrics = list(dict.fromkeys(m for values in series.values() for _, m in values))
    wanted = [KEY_METRIC[feedback]] if feedback in KEY_METRIC else list(KEY_METRIC.values())
    return next((m for m in wanted if m in metrics), metrics[0] if metrics else None)


def plot_bars(series: Series, metric: str, path: Path, title: str) -> bool:
    """One panel per β: a bar per row (MuSiC's in another colour), error bars = std."""
    plt = _pyplot()
    betas = sorted({b for values in series.values() for b, m in values if m == metric})
    if plt is None or not betas:
        return False
    labels = list(series)
    fig, axes = plt.subplots(
        1, len(betas), figsize=(3.2 * len(betas) + 1.8, 0.32 * len(labels) + 1.4),
        sharey=True, squeeze=False,
    )  # fmt: skip
    for ax, beta in zip(axes[0], betas):
        stats = [series[label].get((beta, metric)) for label in labels]
        means = [s[0] if s else 0.0 for s in stats]
        stds = [s[1] if s else 0.0 for s in stats]
        colors = ["C1" if label.startswith(OURS) else "C0" for label in labels]
        ax.barh(range(len(labels)), means, xerr=stds, color=colors, capsize=3)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        if ax is axes[0][0]:  # the panels share the y axis: invert it once
            ax.invert_yaxis()  # the table's order, top down
        present = [(m, s) for m, s, st in zip(means, stds, stats) if st]
        low, high = min(m - s for m, s in present), max(m + s for m, s in present)
        if low > 0.5 * high:  # close values (RMSE ≈ 1): zoom in, else all bars look equal
            pad = 0.1 * (high - low) or 0.05 * high
            ax.set_xlim(low - pad, high + pad)
            ax.set_xlabel(metric_label(metric) + " (axis cut)", fontsize=8)
        else:
            ax.set_xlabel(metric_label(metric), fontsize=8)
        for y, stat in enumerate(stats):
            if stat is None:
                ax.text(ax.get_xlim()[0], y, " n/a", va="center", fontsize=7)
        ax.set_title(beta_label(beta), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True


def plot_steps(series: Series, betas, steps, path: Path, title: str) -> bool:
    """One panel per metric: a line over T per β, error bars = std."""
    plt = _pyplot()
    metrics = list(dict.fromkeys(m for values in series.values() for _, m in values))
    if plt is None or not metrics:
        return False
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(3.4 * len(metrics) + 0.6, 3.3), squeeze=False
    )
    for ax, metric in zip(axes[0], metrics):
        for beta in betas:
            xs, ys, errs = [], [], []
            for t in steps:
                stat = series.get(f"T = {t}", {}).get((beta, metric))
                if stat is not None:
                    xs.append(t)
                    ys.append(stat[0])
                    errs.append(stat[1])
            if xs:
                ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=beta_label(beta))
        ax.set_xscale("log")
        ax.set_xticks(list(steps))
        ax.set_xticklabels([str(t) for t in steps])
        ax.minorticks_off()
        ax.set_xlabel("diffusion steps T")
        ax.set_title(metric_label(metric))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True


def draw(name: str, series: Series, path: Path, task: str, kind: str, feedback=None, **steps):
    """The figure of table ``name`` (``steps`` needs ``betas`` and ``steps``); False when
    there is nothing to draw or no matplotlib."""
    note = "error bars: std over seeds"
    if name == "steps":
        title = f"{TITLES['steps']} — {task} ({kind}); {note}"
        return plot_steps(series, steps["betas"], steps["steps"], path, title)
    metric = key_metric(series, feedback)
    if metric is None:
        return False
    better = "lower is better" if smaller_is_better(metric) else "higher is better"
    title = f"{TITLES[name]} — {task} ({kind})\n{metric_label(metric)}, {better}; {note}"
    return plot_bars(series, metric, path, title)


def image_line(name: str) -> str:
    return f"\n![{FIGURE_ALT[name]}]({name}.png)\n"


def figures_from_csv(folder: Path) -> list[Path]:
    """The figure of every table CSV in a task's report folder, from its mean and std columns;
    the table's Markdown gets the image line if it lacks it. The data's kind (GENERATED or
    real) is read from that Markdown's header."""
    written = []
    for name in FIGURE_ALT:
        csv_path, md_path = folder / f"{name}.csv", folder / f"{name}.md"
        if not csv_path.is_file():
            continue
        series = read_csv_series(csv_path)
        text = md_path.read_text() if md_path.is_file() else ""
        kind = (
            "GENERATED data" if "**GENERATED" in text
            else "real data" if "**real data**" in text
            else "provenance unknown"
        )  # fmt: skip
        extra = {}
        if name == "steps":
            steps = sorted(int(m.group(1)) for k in series if (m := re.fullmatch(r"T = (\d+)", k)))
            betas = sorted({b for values in series.values() for b, _ in values})
            extra = {"betas": betas, "steps": steps}
        png = folder / f"{name}.png"
        if draw(name, series, png, folder.name, kind, **extra):
            written.append(png)
            if text and f"]({name}.png)" not in text:
                write_text_atomic(text.rstrip("\n") + "\n" + image_line(name), md_path)
    return written


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figures (pip install matplotlib)")
        return None
    return plt


def _save(fig, path: Path) -> None:
    """Through a temporary file and a rename: an interrupted run leaves no half-written PNG."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
