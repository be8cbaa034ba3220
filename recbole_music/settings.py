"""Command-line settings checked before anything trains: known names, values of the right type.

RecBole takes any ``--key=value``: a misspelt name (``--learning_rat=0.1``) is silently ignored
and a value of the wrong type (``--epochs=abc``) fails deep inside training. Here a name is known
when a YAML file that makes a run's configuration defines it — RecBole's own (overall, dataset
sample, model and quick-start files) and the plugin's ``properties/`` — or a file the user gave
(``--config_files``, the dataset's YAML). A value must parse to a type its defaults have.

``MODEL:KEY=VALUE`` (``--model-arg``) gives one model a setting and leaves the others alone.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable
from pathlib import Path

import recbole
import yaml

from recbole_music.config import PROPERTIES_DIR

RECBOLE_PROPERTIES = Path(recbole.__file__).resolve().parent / "properties"

# Settings RecBole's quick start passes itself rather than reading from a YAML file.
RUNTIME_SETTINGS = {"nproc": int, "world_size": int, "offset": int, "ip": str, "port": str}


class SettingsError(ValueError):
    """One or more bad ``--key=value`` settings (the message lists each)."""


def read_yaml(path: str | Path) -> dict:
    """A configuration file's settings; a missing file or bad YAML is a :class:`SettingsError`
    naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise SettingsError(f"config file {path} {what}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SettingsError(f"config file {path}: not valid UTF-8") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise SettingsError(f"config file {where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path}: expected `key: value` lines at the top level")
    return data


# RecBole's download tables (dataset name -> URL), not settings.
NOT_SETTINGS = {"url.yaml", "kg_url.yaml"}


def default_files() -> list[Path]:
    """Every YAML file RecBole or the plugin may load into a run's configuration."""
    files = sorted(RECBOLE_PROPERTIES.rglob("*.yaml")) + sorted(PROPERTIES_DIR.rglob("*.yaml"))
    return [path for path in files if path.name not in NOT_SETTINGS]


def known_settings(extra_files: Iterable[str | Path] = ()) -> dict[str, set[type]]:
    """Each known setting name, with the types of the values its files give it."""
    known: dict[str, set[type]] = {name: {kind} for name, kind in RUNTIME_SETTINGS.items()}
    for path in [*default_files(), *extra_files]:
        for name, value in read_yaml(path).items():
            kinds = known.setdefault(str(name), set())
            if value is not None:
                kinds.add(type(value))
    return known


def parse_value(text: str):
    """A command-line value as RecBole reads one (Python literals, true/false, else the text),
    without evaluating anything but literals."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        return text


def _fits(value, kinds: set[type]) -> bool:
    if not kinds or value is None:
        return True  # no typed default (None): any value
    kind = type(value)
    if kind is bool:
        return bool in kinds
    if kind is int:
        return bool(kinds & {int, float, str})  # gpu_id: '0' in YAML, 0 on the command line
    if kind is float:
        return float in kinds
    if kinds & {list, tuple, dict}:
        return True  # RecBole takes a scalar for a list (topk: 10, metrics: NDCG) itself
    return kind in kinds or str in kinds


_TYPE_WORDS = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "text",
    list: "a list",
    dict: "a mapping",
}


def check_settings(settings: dict[str, str], known: dict[str, set[type]], flag: str = "--"):
    """``{name: typed value}`` of ``{name: text}``; every unknown name (with the closest known
    ones) and every value of the wrong type is reported at once in a :class:`SettingsError`."""
    problems, typed = [], {}
    for name, text in settings.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.75)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            problems.append(
                f"{flag}{name}: no RecBole or recbole-music setting has this name{hint}"
            )
            continue
        value = parse_value(text)
        if not _fits(value, known[name]):
            wanted = " or ".join(sorted(_TYPE_WORDS.get(k, k.__name__) for k in known[name]))
            problems.append(f"{flag}{name}={text}: expected {wanted}")
            continue
        typed[name] = value
    if problems:
        raise SettingsError("bad settings:\n  " + "\n  ".join(problems))
    return typed


def split_setting(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` → (key, value text); raises ValueError when there is no ``=`` or key."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"{text!r}: expected KEY=VALUE")
    return key, value


def parse_model_arg(spec: str) -> tuple[str, str, str]:
    """``MODEL:KEY=VALUE`` (a setting for one model only) → (model, key, value text)."""
    model, sep, setting = spec.partition(":")
    if not sep or not model:
        raise ValueError(f"{spec!r}: expected MODEL:KEY=VALUE")
    key, value = split_setting(setting)
    return model, key, value
