"""Run models × β × seeds on one dataset through run_recbole_music.py; tabulate mean ± std.

Each cell is one run of the real command (a subprocess, the same split for every model at a
given β and seed) whose result JSON is kept under ``--work``: rerunning the script skips the
finished cells, so an interrupted grid resumes. A variant is ``label=Model`` or
``label=Model:--key=value,--key=value`` (RecBole overrides).

    python bench/cold_start_grid.py --dataset movie_music_demo --betas 0.2 0.5 0.8 --seeds 1 2 3 \
        --variant MuSiC=MuSiC --variant "w/o diffusion=MuSiC:--use_diffusion=False" \
        --variant TargetMF=TargetMF --out bench/results/music_ablation_demo.md
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from _grid import (
    ROOT,
    Cell,
    CellFailed,
    Row,
    best_rows,
    fmt_stat,
    run_cell,
    summarise,
)


def parse_variant(text: str) -> tuple[str, str, list[str]]:
    label, _, spec = text.partition("=")
    model, _, overrides = spec.partition(":")
    return label.strip(), model.strip(), [o for o in overrides.split(",") if o]


def cell_path(work: Path, label: str, beta: float, seed: int) -> Path:
    """This script's cache names a cell by its label (compare.py names it by its spec)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
    return work / f"{safe}-beta{beta}-seed{seed}.json"


def table(results, variants, betas, metrics) -> str:
    lines = []
    for beta in betas:
        present = [label for label, *_ in variants if (label, beta) in results]
        if not present:
            continue
        lines += [
            f"\n### β = {int(round(beta * 100))}%\n",
            "| variant | " + " | ".join(metrics) + " | s/run |",
            "|---|" + "---:|" * (len(metrics) + 1),
        ]
        rows = [
            Row(label, {m: [r["test"].get(m) for r in results[(label, beta)]] for m in metrics})
            for label in present
        ]
        # a metric some run of a variant lacks is n/a for that variant
        for row in rows:
            for m in metrics:
                if any(v is None for v in row.values[m]):
                    row.values[m] = []
        best = best_rows(rows, metrics)
        for row in rows:
            cells = [fmt_stat(row.stat(m), best.get(m) == row.label) for m in metrics]
            runs = results[(row.label, beta)]
            seconds = summarise([r.get("seconds", float("nan")) for r in runs])[0]
            cells.append(f"{seconds:.0f}")
            lines.append(f"| {row.label} ({len(runs)} seeds) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.2, 0.5, 0.8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--variant", action="append", required=True, help="label=Model[:--key=value,...]; repeat"
    )
    parser.add_argument(
        "--metrics", nargs="+", default=["mae", "rmse", "ratedndcg@20", "ndcg@20", "recall@20"]
    )
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every cell")
    parser.add_argument("--cwd", default=str(ROOT), help="where dataset/ lives")
    parser.add_argument(
        "--work", default=None, help="cell cache (default bench/_work/grid/<dataset>)"
    )
    parser.add_argument("--out", required=True, help="Markdown report")
    parser.add_argument("--title", default=None)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="tabulate the finished cells only (a partial grid), run nothing",
    )
    args = parser.parse_args()
    args.work = args.work or str(ROOT / "bench" / "_work" / "grid" / args.dataset)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    variants = [parse_variant(v) for v in args.variant]
    results, n, total = {}, 0, len(variants) * len(args.betas) * len(args.seeds)
    started = time.perf_counter()
    for beta in args.betas:
        for seed in args.seeds:
            for label, model, overrides in variants:
                n += 1
                cached = cell_path(Path(args.work), label, beta, seed).is_file()
                if args.report_only and not cached:
                    continue
                cell = Cell(args.dataset, model, beta, seed, (*overrides, *args.extra))
                path = cell_path(Path(args.work), label, beta, seed)
                try:
                    result = run_cell(cell, path, cwd=args.cwd)
                except CellFailed as error:
                    raise SystemExit(
                        f"cell {label} β={beta} seed={seed} failed:\n{error}"
                    ) from None
                results.setdefault((label, beta), []).append(result)
                print(
                    f"[{n}/{total}] {label} β={beta} seed={seed}: "
                    + ("cached" if cached else f"{result.get('seconds', 0):.0f}s ")
                    + " ".join(f"{k}={v}" for k, v in result["test"].items()),
                    flush=True,
                )
    generated = any(r["run"].get("generated_data") for runs in results.values() for r in runs)
    kind = "GENERATED (synthetic) demo data" if generated else "real data"
    if not results:
        raise SystemExit(f"no finished cells in {args.work}")
    first = next(iter(results.values()))[0]["run"]
    spec = "\n".join(
        f"- **{label}**: `--model={model}` {' '.join(o for o in overrides)}"
        for label, model, overrides in variants
    )
    report = f"""# {args.title or f"Cold-start grid on {args.dataset}"}

Data: `{args.dataset}` — **{kind}**. Test metrics on the cold-start users, mean ± std over
seeds {args.seeds} (each seed is a different split and model initialisation; all variants share
the split of a given β and seed). Model selection: {first["model_selection"]}; valid metric per
model as in the run JSONs. Best mean per column in bold. Conventions: mae/rmse pooled over
held-out ratings; ratedndcg = the MuSiC paper's NDCG over each user's rated items; ndcg/recall =
full ranking over all target items.

Variants:
{spec}

Command: `python bench/{Path(__file__).name} --dataset {args.dataset} --betas {" ".join(map(str, args.betas))} --seeds {" ".join(map(str, args.seeds))} ...` (see the variants above{"; extra: " + " ".join(args.extra) if args.extra else ""}).
Total wall time of this invocation: {time.perf_counter() - started:.0f} s (cached cells excluded).
{table(results, variants, args.betas, args.metrics)}
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
