#!/usr/bin/env bash
# Create ./.venv (Python 3.11) with recbole-music installed in editable mode, unless it exists.
# Sourced by scripts/demo.sh and scripts/test.sh; VENV overrides the location.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON_BIN:-}"
if [ -z "$PYTHON_BIN" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && \
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON_BIN="$candidate"; break
    fi
  done
fi
if [ -z "$PYTHON_BIN" ]; then
  echo "error: Python 3.11 is required (RecBole 1.2.1 pins ray<=2.6.3, which has no wheels for 3.12+)" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import recbole_music, dataset_prep' >/dev/null 2>&1; then
  echo "== creating $VENV with $("$PYTHON_BIN" --version) and installing recbole-music (about a minute)"
  "$PYTHON_BIN" -m venv "$VENV"
  log="$VENV/pip-install.log"
  # torch first, pinned: a looser spec would pull a multi-GB CUDA build
  if ! { "$VENV/bin/python" -m pip install "torch==2.13.0" &&
         "$VENV/bin/python" -m pip install -e "$ROOT[dev]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "error: installing recbole-music failed; full log: $log" >&2
    exit 1
  fi
  echo "== installed ($(grep -c . "$log") lines of pip output in $log)"
fi
export PATH="$VENV/bin:$PATH"
