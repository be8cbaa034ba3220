"""Shared by the bench scripts that need a trained model itself, not only its result (the
comparison's cells run in subprocesses instead, _grid.py): one run trained in this process as
``run_recbole_music`` trains it, reloaded at its best epoch."""

from __future__ import annotations

import tempfile

from _paths import ROOT


def cell_config(model_name: str, dataset: str, beta: float, seed: int, overrides: dict):
    """RecBole's Config of the run of ``model_name`` on ``dataset`` at ``beta`` and ``seed`` with
    ``overrides``, quiet: the split, seeding and evaluation of that run's cell."""
    from recbole.config import Config

    import recbole_music
    from recbole_music.quick_start import resolve_model

    return Config(
        model=resolve_model(model_name),
        dataset=dataset,
        config_file_list=recbole_music.config_files(model_name, dataset),
        config_dict={
            "state": "ERROR",
            "show_progress": False,
            "cold_ratio": beta,
            "seed": seed,
            **overrides,
        },
    )


def trained_model(model_name: str, dataset: str, beta: float, seed: int, overrides: dict):
    """(model at its best epoch, in eval mode; the training dataset; the test set) of the run
    of ``model_name`` on ``dataset`` at ``beta`` and ``seed`` with ``overrides`` — the split,
    seeding and model selection of the run Table 2's cell makes with the same overrides."""
    from recbole.utils import init_seed

    from recbole_music.quick_start import build_run, ensure_dataset, resolve_model

    model_class = resolve_model(model_name)
    ensure_dataset(dataset, ROOT / "dataset")  # the demo is generated on first use
    with tempfile.TemporaryDirectory() as checkpoints:
        config = cell_config(
            model_name, dataset, beta, seed, {**overrides, "checkpoint_dir": checkpoints}
        )
        init_seed(config["seed"], config["reproducibility"])  # as run_recbole_music
        train_data, valid_set, test_set, model, trainer = build_run(config, model_class)
        trainer.fit(train_data, valid_set, saved=True, verbose=False)
        trainer.load_checkpoint(trainer.saved_model_file)
    return model.eval(), train_data._dataset, test_set
