"""Which YAML files make a run's configuration, lowest priority first.

1. ``properties/overall.yaml`` — the plugin's protocol defaults (split, metrics, evaluation);
2. ``properties/model/<Model>.yaml`` — a model's hyper-parameters (our models; RecBole's
   built-ins keep RecBole's own defaults underneath);
3. ``properties/dataset/<dataset>.yaml`` — per-task settings, when there is one;
4. ``<data_path>/<dataset>/<dataset>.yaml`` — written by ``dataset_prep``: field names, columns,
   explicit or implicit feedback;
5. the user's own files; then RecBole's ``config_dict`` and ``--key=value`` command-line overrides.
"""

from __future__ import annotations

from pathlib import Path

PROPERTIES_DIR = Path(__file__).resolve().parent.parent / "properties"
DEFAULT_DATA_PATH = "dataset"


def dataset_dir(dataset: str, data_path: str | Path = DEFAULT_DATA_PATH) -> Path:
    return Path(data_path) / dataset


def config_files(
    model: str,
    dataset: str,
    data_path: str | Path = DEFAULT_DATA_PATH,
    user_files: list[str] | None = None,
) -> list[str]:
    candidates = [
        PROPERTIES_DIR / "overall.yaml",
        PROPERTIES_DIR / "model" / f"{model}.yaml",
        PROPERTIES_DIR / "dataset" / f"{dataset}.yaml",
        dataset_dir(dataset, data_path) / f"{dataset}.yaml",
    ]
    files = [str(path) for path in candidates if path.is_file()]
    return files + list(user_files or [])
