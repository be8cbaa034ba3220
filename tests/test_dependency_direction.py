"""``dataset_prep`` writes datasets and never imports ``recbole_music`` (RecBole, torch models):
the dependency runs one way, from the recommender to the data preparation."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import dataset_prep

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> list[str]:
    return ["dataset_prep"] + [
        info.name for info in pkgutil.walk_packages(dataset_prep.__path__, "dataset_prep.")
    ]


def test_dataset_prep_never_imports_recbole_music():
    # a fresh interpreter: this test process may already hold recbole_music
    script = (
        "import importlib, json, sys\n"
        f"for name in {_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('recbole_music', 'recbole'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_every_dataset_prep_module_is_checked():
    names = _modules()
    assert "dataset_prep.vector_table" in names and "dataset_prep.features.pipeline" in names


def test_no_dataset_prep_source_imports_recbole_music_even_inside_a_function():
    offenders = []
    for path in sorted((ROOT / "dataset_prep").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(name.split(".")[0] == "recbole_music" for name in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
