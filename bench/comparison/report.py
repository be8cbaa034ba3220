"""One task's report files: per table a Markdown file (header block, table), a CSV and a figure."""

from __future__ import annotations

import os
import shlex
from collections import Counter
from pathlib import Path

from _grid import data_kind, write_text_atomic

from .catalogue import OURS, TITLES
from .figures import FIGURE_ALT, draw, image_line, series_of
from .imported import from_bench_count, imported_count
from .plan import (
    AVERAGE_SETTING,
    BEST_CANDIDATE_ROW,
    SINGLE_MODEL,
    SIZES_FIXED,
    SWEEPS,
    music_variants,
)
from .tables import (
    AT_LIMIT_MARK,
    add_improvement,
    collect,
    composed_by_row,
    counts_last_try_only,
    lines_outside_plan,
    render_markdown,
    write_cells_csv,
    write_csv,
)
from .tasks import Task


def music_features(task: Task, table: str) -> str:
    """The header's sentence on what MuSiC reads in ``table`` on ``task``'s data."""
    content = f"`dataset/{task.name}/features/`"
    if task.has_features and task.feedback == "explicit":
        users = (
            "vectors from the review tables and the users' histories (`user_vectors: both`)."
            if task.has_review_vectors
            else "vectors from the users' histories (no review tables: `user_vectors: history`)."
        )
        return f"MuSiC's features: multimodal tables in {content}; user {users}"
    if table == "dual":  # the interaction vectors still rank; an unseen item has none
        mapped = (
            f"`cold_item_vectors: content` would map it from the content tables of {content}"
            if task.has_features
            else f"there are no content tables in {content} to map it from"
        )
        return (
            "MuSiC's features: **interaction vectors** (its default here: a truncated SVD of the "
            "training interactions; user vectors from the users' histories). An item unseen in "
            "training has none, so the evaluator's fallback scores it, as for the ID-based "
            f"models ({mapped})."
        )
    default = "on implicit feedback" if task.has_features else "without content tables"
    content_row = (
        f", and a row reads the content tables of {content}." if task.has_features else "."
    )
    return (
        f"MuSiC's features: **interaction vectors** (its default {default}: a truncated SVD of "
        "the training interactions; user vectors from the users' histories); the ablation's "
        "'w/o interaction vectors' row runs on learned ID embeddings instead (the paper's "
        f"'w/o MLLM' features){content_row}"
    )


def _relative(path: str, root: Path) -> str:
    return os.path.relpath(path, root) if os.path.isabs(path) else path


def header_block(task: Task, table: str, args, results: list[dict], wall: float, notes) -> str:
    info = task.info
    direction = f"{info.get('aux') or 'aux'} → {info.get('target') or 'target'}"
    # a build records absolute paths: shown from the repository root, never as this machine's
    root = Path(args.cwd).resolve()
    sources = [_relative(s, root) for s in info.get("sources") or []]
    source = f" Built from {', '.join(f'`{s}`' for s in sources)}." if sources else ""
    selection = sorted({r.get("run", {}).get("model_selection", "?") for r in results})
    compute = sum(r.get("seconds", 0.0) for r in results)
    command = shlex.join(
        ["python", "bench/compare.py", *[a for a in args.argv if a != "--report-only"]]
    )
    rebuilt = (
        f"\nTables rebuilt from the cached cells by `{shlex.join(['python', 'bench/compare.py', *args.argv])}`."
        if args.report_only
        else ""
    )
    feature_line = "\n" + music_features(task, table)
    note_lines = "".join(f"\n- {n}" for n in notes)
    notes_block = f"\n**Notes:**{note_lines}\n" if notes else ""
    return f"""# {TITLES[table]}: {task.name}

**Data:** `dataset/{task.name}` ({direction}, {task.feedback} feedback) — {data_kind(info)}.{source}

Test metrics on the cold-start users (a share β of the overlapping users, docs/protocol.md), mean ±
std over seeds {args.seeds}: a seed is one split and one model initialisation, and every row
shares the split of a given β and seed. Model selection: {"; ".join(selection) or "n/a"}.
Best mean per column in **bold**; ↓ lower is better, ↑ higher is better. MAE/RMSE pooled over
held-out ratings; rated NDCG@20 = the MuSiC paper's NDCG over each user's own rated items;
NDCG@20/Recall@20 = full ranking over all target items.{feature_line}

**Command:** `{command}`{rebuilt}
**Wall time:** {wall:.0f} s for this invocation; the runs in this table took {compute:.0f} s of
compute in all (sum of per-run times, cached runs included).
{notes_block}"""


def planned_by_row(task: Task, entries, table: str) -> dict[str, set[str]]:
    """The cache keys of each row of ``table``, in row order."""
    keys: dict[str, set[str]] = {}
    for e in entries:
        if e.table == table:
            keys.setdefault(e.row, set()).add(f"{task.name}/{e.cell.key()}")
    return keys


def write_reports(task: Task, entries, results, failures, args, wall: float) -> list[Path]:
    out = Path(args.out) / task.name
    out.mkdir(parents=True, exist_ok=True)
    written = []
    n_seeds = len(args.seeds)
    for name in args.tables:
        betas = args.steps_betas if name in SWEEPS else args.betas
        if name == "dual":
            betas = args.dual_betas
        first = {
            "main": "model",
            "ablation": "variant",
            "steps": "T",
            "activation": "activation",
            "dual": "model",
        }[name]
        table = collect(task, entries, results, name, betas)
        used = [
            results[k]
            for k in dict.fromkeys(
                f"{task.name}/{e.cell.key()}" for e in entries if e.table == name
            )
            if k in results
        ]
        notes = list(task.notes) if name in ("main", "dual") else []  # models left out
        notes += [f"{m} alone: `--{kv}`" for m, kv in args.model_args]
        by_row = planned_by_row(task, entries, name)
        planned = set().union(*by_row.values())
        finished = planned & set(results)
        if finished != planned:  # name each row that lacks runs: a row with none is not shown
            lacking = "; ".join(
                f"{row} {len(keys & finished)} of {len(keys)} finished"
                for row, keys in by_row.items()
                if not keys <= finished
            )
            notes.append(
                f"{len(planned - finished)} of {len(planned)} runs not finished (failed, skipped "
                f"or not run yet): {lacking}. A cell with fewer seeds than its column's others is "
                "not bolded: its mean is not over the same seeds."
            )
        notes += [f"failed: `{failures[k]}`" for k in sorted(planned & set(failures))]
        from_bench = from_bench_count(used)
        if from_bench:
            notes.append(
                f"{from_bench} of the {len(used)} runs (MuSiC's size searches) were read from "
                "bench/results/size_search_average_cells.csv: that bench trains the same "
                "candidates, one run each, and selects on the validation users as the search "
                "does (their average for the row MuSiC, the best candidate alone for its row); "
                "seconds = its candidate runs' seconds summed, no best epoch recorded."
            )
        imported = imported_count(used)
        if imported:
            notes.append(
                f"{imported} of the {len(used)} runs were read from the committed "
                f"{name}_cells.csv of an earlier invocation (`--cells-from-csv`): their metrics, "
                "best epoch and seconds as that file gives them."
            )
        last_try_only = {
            row: n
            for row, keys in by_row.items()
            if (n := sum(counts_last_try_only(results[k]) for k in keys & finished))
        }
        if last_try_only:
            runs = ", ".join(f"{row} {n}" for row, n in last_try_only.items())
            notes.append(
                f"Resumed after an interruption, with the seconds of their last try only (the "
                f"earlier tries' were not recorded), so s/run understates them: {runs}."
            )
        if table.at_epoch_limit:
            runs = ", ".join(f"{row} {n}" for row, n in table.at_epoch_limit.items())
            notes.append(
                f"{AT_LIMIT_MARK} runs that ended at their epoch limit (`epochs`) rather than by "
                f"early stopping, so not converged: {runs}. The cells CSV's `stopped_by` says "
                "which; rerun them after raising the limit (delete their lines and cache files)."
            )
        composed = composed_by_row(by_row, results)
        if composed:
            notes.append(
                "Composed cells: "
                + ", ".join(f"{row} {n}" for row, n in composed.items())
                + ". Each is what its size search chooses on the validation users (the best "
                "candidate, or the average of those the cells CSV's `averaged` names), taken "
                "from the candidates' own runs (run one by one); the cells CSV's `composed` "
                "marks them, and the cell's JSON (`run.composed_from`) names the runs and how "
                "its seconds were counted."
            )
        if name == "dual":
            notes.append(
                f"Dual cold-start: `--cold_item_ratio={args.cold_item_ratio}` — that share of the "
                "target items is unseen in training, held out for the test users (and as many "
                "for the validation users); docs/protocol.md. On explicit feedback with content "
                "tables MuSiC scores an unseen item from its content vectors; otherwise it, like "
                "every other model, gets the evaluator's fallback (the user's mean predicted "
                "rating, and mean ranking score, over the seen target items): each cell's "
                "`run.unseen_items` says which."
            )
        if name in ("main", "dual"):
            add_improvement(table)
            if table.improvement is not None:
                notes.append(
                    f"Last row: {OURS}'s relative improvement over the best other model of each "
                    "column, positive = MuSiC better: (other − MuSiC)/other for MAE/RMSE, "
                    "(MuSiC − other)/other for the rest; n/a where MuSiC has fewer finished seeds than "
                    "that model."
                )
        if name == "ablation":
            spec = {label: o for label, o in music_variants(task, args.with_fused)}
            notes += [
                f"{label}: `{' '.join(o)}`" if o else f"{label}: the defaults"
                for label, o in spec.items()
            ]
        if any(SINGLE_MODEL in e.cell.overrides for e in entries if e.table == name):
            notes.append(
                f"MuSiC's default size search averages its candidates (`{AVERAGE_SETTING}`); "
                "this table compares single models, so its full model keeps the best candidate "
                f"alone (`{SINGLE_MODEL}`), the run each variant changes one part of."
                if name not in ("main", "dual")
                else f"{BEST_CANDIDATE_ROW}: MuSiC's size search keeping its best candidate "
                f"alone (`{SINGLE_MODEL}`), beside the default that averages the candidates."
            )
        if any(SIZES_FIXED in e.cell.overrides for e in entries if e.table == name):
            notes.append(
                f"The variants of the full model train at the sizes its size search chose on the "
                "validation users of the same β and seed (the cells CSV's `chosen` column), with "
                f"`{SIZES_FIXED}` and those sizes added to their overrides: each changes one "
                "part of the model and nothing else."
            )
        cells = out / f"{name}_cells.csv"
        kept = lines_outside_plan(entries, name, cells)
        if kept:
            outside = ", ".join(
                f"{row} ({n})" for row, n in Counter(line.get(first) for line in kept).items()
            )
            notes.append(
                f"{name}_cells.csv also keeps {len(kept)} earlier lines of rows, β or seeds this "
                f"invocation did not plan, not in the table: {outside}."
            )
        notes.append(
            f"Every run's validation and test metrics, seed by seed: [{name}_cells.csv]({name}_cells.csv)."
        )
        body = render_markdown(table, first, n_seeds) if table.rows else "_No finished runs._"
        text = header_block(task, name, args, used, wall, notes) + "\n" + body + "\n"
        if table.rows and name in FIGURE_ALT:
            kind = "GENERATED data" if task.info.get("generated") else "real data"
            if task.info.get("generated") is None:
                kind = "provenance unknown"
            png = out / f"{name}.png"
            sweep = {"betas": betas, "steps": args.steps} if name == "steps" else {}
            if draw(name, series_of(table), png, task.name, kind, task.feedback, **sweep):
                text += image_line(name)
                written.append(png)
        write_text_atomic(text, out / f"{name}.md")
        write_csv(table, out / f"{name}.csv", first)
        write_cells_csv(task, entries, results, name, cells, first, kept)
        written += [out / f"{name}.md", out / f"{name}.csv", cells]
    return written
