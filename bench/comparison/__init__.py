"""bench/compare.py's parts: catalogue (names, metrics, labels), tasks (dataset folders),
plan (cells per table), run (cells, cached), tables, figures, report (files per task), cli."""
