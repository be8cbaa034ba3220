"""Side-by-side comparison of the MuSiC paper (Tables 2–3, Figs. 3–4): models × tasks × β × seeds.

The command; its parts are in bench/comparison/ (catalogue, tasks, plan, run, compose, tables,
figures, report, imported, cli) and its usage in docs/compare.md or
``python bench/compare.py --help``.
"""

from comparison.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
