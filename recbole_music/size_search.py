"""Train one model at several sizes and keep the size that does best on the validation users.

A model opts in with ``size_candidates()``: the settings to try besides the run's own (MuSiC:
the sizes of its interaction vectors and features, ``interaction_size_search``). Each candidate
is a full training run on the same split, seeded as the first, so it equals the run one would
get by passing those settings on the command line. The best by ``valid_metric`` is kept (a tie
keeps the earlier candidate, so the run's own settings win ties) and only it meets the test
users; the others' checkpoints are removed. Without validation users, or in a ``--nproc`` group,
there is nothing to search on (or the search is not supported) and the run's own settings are
kept, as the log says.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from recbole.utils import set_color

from recbole_music.distributed import is_distributed


@dataclass
class TrainedCandidate:
    """One candidate's fitted model and trainer, with its best validation score; ``settings``
    (its values of the searched keys) are filled in by :func:`search_sizes`."""

    model: object
    trainer: object
    valid_score: float
    valid_result: dict | None
    settings: dict = field(default_factory=dict)


def candidate_settings(model, config, valid_set) -> list[dict]:
    """The settings to train besides the run's own: none when the model has no search, when
    there are no validation users, or in a ``--nproc`` group (each said in the log)."""
    propose = getattr(model, "size_candidates", None)
    candidates = [c for c in (propose() if propose else []) if _differs(c, config)]
    if not candidates:
        return []
    name, logger = type(model).__name__, logging.getLogger()
    if valid_set is None:
        logger.info(f"{name} size search skipped: no validation users; the YAML sizes are used")
        return []
    if is_distributed(config):
        logger.info(
            f"{name} size search skipped: not run in a --nproc group; the YAML sizes are used"
        )
        return []
    return candidates


def _differs(settings: dict, config) -> bool:
    return any(config[key] != value for key, value in settings.items())


def search_sizes(
    first: TrainedCandidate,
    candidates: list[dict],
    config,
    train: Callable[[], TrainedCandidate],
) -> tuple[TrainedCandidate, list[dict]]:
    """(the best of ``first`` and the candidates, a summary row per candidate).

    ``train()`` trains a fresh model under the current ``config``; each candidate's settings are
    written into ``config`` before it trains, and the chosen candidate's are left there (so the
    run's recorded settings and checkpoint agree with the model that is tested)."""
    logger = logging.getLogger()
    name = type(first.model).__name__
    keys = sorted({key for candidate in candidates for key in candidate})
    first.settings = {key: config[key] for key in keys}
    logger.info(
        set_color(f"{name} size search", "green")
        + f": {1 + len(candidates)} sizes, each trained in full, chosen on the validation users "
        f"by {config['valid_metric']}"
    )
    _log(logger, first, config)
    trained, best = [first], first
    for settings in candidates:
        for key in keys:
            config[key] = settings.get(key, first.settings[key])
        candidate = train()
        candidate.settings = {key: config[key] for key in keys}
        _log(logger, candidate, config)
        trained.append(candidate)
        if _better(candidate.valid_score, best.valid_score, config["valid_metric_bigger"]):
            best = candidate
    for key, value in best.settings.items():
        config[key] = value
    for candidate in trained:
        if candidate is not best:
            _remove_checkpoint(candidate.trainer)
    logger.info(
        set_color(f"{name} chosen on validation users", "green")
        + f": {_fmt(best.settings)} ({config['valid_metric']}={best.valid_score:.4f})"
    )
    summary = [
        {
            "settings": dict(c.settings),
            "valid_score": float(c.valid_score),
            "best_epoch": c.trainer.best_epoch,
            "chosen": c is best,
        }
        for c in trained
    ]
    return best, summary


def _better(score: float, best: float, bigger: bool) -> bool:
    return score > best if bigger else score < best


def _remove_checkpoint(trainer) -> None:
    path = getattr(trainer, "saved_model_file", None)
    if path and os.path.isfile(path):
        os.remove(path)


def _log(logger, candidate: TrainedCandidate, config) -> None:
    logger.info(
        f"  {_fmt(candidate.settings)}: {config['valid_metric']}={candidate.valid_score:.4f} "
        f"(best epoch {candidate.trainer.best_epoch})"
    )


def _fmt(settings: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())
