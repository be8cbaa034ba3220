"""Each default lives in one place, the YAML: every setting a plugin model's code reads is
declared in one of the YAML layers of its runs, and a missing one fails with a clear message."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest
import recbole.trainer
import yaml
from recbole.config import Config

import recbole_music
from recbole_music.config import MissingSettingError, setting
from recbole_music.model.baselines.base_mf import BASE_MF_KEYS
from recbole_music.registry import PLUGIN_MODELS

ROOT = Path(__file__).resolve().parent.parent
READ = re.compile(
    r"""config\[\s*["'](\w+)["']\s*\]|setting\(\s*(?:self\.)?config,\s*["'](\w+)["']"""
)


def _recbole_defaults() -> set[str]:
    """RecBole's own settings and what its Config sets itself (device, checkpoint_dir, ...):
    a run of GlobalMean, whose YAML declares nothing a model reads, holds them all."""
    model = PLUGIN_MODELS["GlobalMean"]
    config = Config(
        model=model,
        dataset="no-such-dataset",
        config_file_list=recbole_music.config_files(model, "no-such-dataset"),
    )
    return set(config.final_config_dict) - set(
        yaml.safe_load((ROOT / "properties" / "model" / "GlobalMean.yaml").read_text()) or {}
    )


RECBOLE_DEFAULTS = _recbole_defaults()


def _project_modules(module_names: set[str]) -> set[str]:
    """The modules, plus the recbole_music.model modules they import names from (transitively)."""
    seen, todo = set(), list(module_names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse(inspect.getsource(importlib.import_module(name)))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "recbole_music.model"
            ):
                todo.append(node.module)
    return seen


def _keys_read(model_class: type) -> set[str]:
    """Settings read by the model's classes, its trainer's and the model modules they use."""
    trainer = getattr(recbole.trainer, f"{model_class.__name__}Trainer")  # as registered
    classes = (*model_class.__mro__, *trainer.__mro__)
    modules = {c.__module__ for c in classes if c.__module__.startswith("recbole_music")}
    keys = set()
    for name in _project_modules(modules):
        for match in READ.finditer(inspect.getsource(importlib.import_module(name))):
            keys.add(match.group(1) or match.group(2))
    if getattr(model_class, "uses_base_mf", False):
        keys |= set(BASE_MF_KEYS)  # read in a loop over the tuple
    return keys


def _declared(model: str) -> set[str]:
    keys = set()
    for path in recbole_music.config_files(model, "no-such-dataset"):
        keys |= set(yaml.safe_load(Path(path).read_text()) or {})
    return keys


@pytest.mark.parametrize("model", sorted(PLUGIN_MODELS))
def test_every_setting_a_model_reads_is_in_its_yaml_layers(model):
    missing = _keys_read(PLUGIN_MODELS[model]) - _declared(model) - RECBOLE_DEFAULTS
    assert not missing, f"{model} reads {sorted(missing)}, declared in none of its YAML layers"


def test_the_check_sees_the_reads_of_base_classes_and_helpers():
    keys = _keys_read(PLUGIN_MODELS["EMCDR"])
    # its own file, MappingRecommender's, and base_mf.py's (imported by mapping_base)
    assert {"mlp_hidden_size", "num_negatives", "base_mf_cache", "base_mf_epochs"} <= keys
    assert "stage1_learning_rate" in _keys_read(PLUGIN_MODELS["MuSiC"])  # MuSiCTrainer's


def test_a_missing_setting_names_the_key_and_its_yaml(tiny_data_root):
    from conftest import make_config

    config = make_config("TargetMF")
    assert setting(config, "init_std") == config["init_std"]
    del config.final_config_dict["init_std"]
    with pytest.raises(MissingSettingError, match=r"'init_std'.*properties/model/TargetMF\.yaml"):
        setting(config, "init_std")
