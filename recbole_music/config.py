"""Which YAML files make a run's configuration, lowest priority first; each default is in one.

1. ``properties/overall.yaml`` — the plugin's protocol defaults (split, metrics, evaluation);
2. the model class's shared layers, ``config_layers`` (e.g. ``properties/base_mf.yaml`` under
   every mapping baseline);
3. ``properties/model/<Model>.yaml`` — a model's hyper-parameters (our models; RecBole's
   built-ins keep RecBole's own defaults underneath);
4. ``<data_path>/<dataset>/<dataset>.yaml`` — written by ``dataset_prep``: field names, columns,
   explicit or implicit feedback;
5. ``properties/sequential.yaml`` for a sequential model (after the dataset's YAML: the
   sequential protocol replaces its metrics);
6. the user's own files; then RecBole's ``config_dict`` and ``--key=value`` command-line overrides.

Code reads a setting as ``config["key"]`` (or :func:`setting`, which fails clearly when the key is
in no layer) and never carries a default of its own.
"""

from __future__ import annotations

from pathlib import Path

from recbole.utils import ModelType, get_model

PROPERTIES_DIR = Path(__file__).resolve().parent.parent / "properties"
SEQUENTIAL_DEFAULTS = PROPERTIES_DIR / "sequential.yaml"
# where a setting's default lives, for :func:`setting`'s message
OVERALL_YAML = "properties/overall.yaml"
BASE_MF_YAML = "properties/base_mf.yaml"
SEQUENTIAL_YAML = "properties/sequential.yaml"
DEFAULT_DATA_PATH = "dataset"


class MissingSettingError(ValueError):
    """A setting the code reads is in none of the run's YAML layers."""


def setting(config, key: str, home: str | None = None):
    """``config[key]``, or a :class:`MissingSettingError` naming the key and the YAML file its
    default belongs in (``home``; the model's own YAML unless given). RecBole's Config answers
    None for an unknown key, which would otherwise pass for a deliberate ``~``."""
    if key not in config:
        home = home or f"properties/model/{config['model']}.yaml"
        raise MissingSettingError(
            f"setting '{key}' is missing from the configuration; its default belongs in {home}"
        )
    return config[key]


def by_feedback(value, explicit: bool, name: str = "setting"):
    """A setting given either as one value or per feedback type: ``{explicit: .., implicit: ..}``."""
    if isinstance(value, dict):
        kind = "explicit" if explicit else "implicit"
        if kind not in value:
            raise ValueError(
                f"{name} is given per feedback type but has no '{kind}' entry: {value}"
            )
        return value[kind]
    return value


def dataset_dir(dataset: str, data_path: str | Path = DEFAULT_DATA_PATH) -> Path:
    return Path(data_path) / dataset


def model_class_of(model: str | type) -> type | None:
    """The class of a model name (the plugin's, once registered, or RecBole's); None if unknown."""
    if not isinstance(model, str):
        return model
    try:
        return get_model(model)
    except (ValueError, AttributeError, ImportError):  # unknown: the run reports it
        return None


def is_sequential(model: str | type) -> bool:
    """Sequential models (LLMEMF, RecBole's SASRec, GRU4Rec, ...) get the sequential protocol:
    next-item examples, leave-last-out for held-out overlapping users, next-target-item metrics."""
    return getattr(model_class_of(model), "type", None) == ModelType.SEQUENTIAL


def config_files(
    model: str | type,
    dataset: str,
    data_path: str | Path = DEFAULT_DATA_PATH,
    user_files: list[str] | None = None,
) -> list[str]:
    """The YAML layers of a run of ``model`` (a name or a class) on ``dataset``, in the order
    RecBole's Config reads them (later ones win); layers that do not exist are left out."""
    model_class = model_class_of(model)
    name = model if isinstance(model, str) else model.__name__
    candidates = [
        PROPERTIES_DIR / "overall.yaml",
        *(PROPERTIES_DIR / layer for layer in getattr(model_class, "config_layers", ())),
        PROPERTIES_DIR / "model" / f"{name}.yaml",
        dataset_dir(dataset, data_path) / f"{dataset}.yaml",
    ]
    if is_sequential(model_class):
        candidates.append(SEQUENTIAL_DEFAULTS)
    files = [str(path) for path in candidates if path.is_file()]
    return files + list(user_files or [])
