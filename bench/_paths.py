"""The repository root for the bench scripts (run as ``python bench/<script>.py``, so this folder
is on ``sys.path``); importing it also puts the root there, for ``recbole_music``/``dataset_prep``."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
