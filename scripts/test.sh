#!/usr/bin/env bash
# Set up ./.venv if needed, lint and check the formatting with ruff, run the test suite (offline, a few minutes on 2 cores).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
echo "== ruff"
ruff check .
ruff format --check .
echo "== pytest"
OMP_NUM_THREADS=1 python -m pytest -q "$@"
