"""docs/adding_a_model.md is true: its class and YAML, registered as it says, run on the split."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from recbole_music.quick_start import run_recbole_music
from recbole_music.registry import PLUGIN_MODELS, register_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding_a_model.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_documented_model_registers_and_runs(tiny_data_root, tmp_path):
    module = types.ModuleType("documented_toy_model")
    sys.modules[module.__name__] = module  # registration aliases the class's module
    exec(compile(_blocks("python")[0], str(DOC), "exec"), module.__dict__)
    yaml_file = tmp_path / "TargetPop.yaml"
    yaml_file.write_text(_blocks("yaml")[0])
    try:
        register_model(module.TargetPop)
        result = run_recbole_music(
            "TargetPop",
            "tiny_implicit",
            config_file_list=[str(yaml_file)],
            config_dict={"state": "ERROR", "show_progress": False},
            saved=False,
        )
    finally:
        PLUGIN_MODELS.pop("TargetPop", None)
        sys.modules.pop(module.__name__, None)
    assert result["test_result"]["ndcg@20"] > 0  # popularity finds some held-out items
    assert (
        "bench/compare.py --tasks movie_music_demo --models ItemMean,TargetPop" in DOC.read_text()
    )
