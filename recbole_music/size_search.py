"""Train one model at several sizes and keep the size that does best on the validation users.

A model opts in with ``size_candidates()``: the settings to try besides the run's own (MuSiC:
the sizes of its interaction vectors and features, ``interaction_size_search``). Each candidate
is a full training run on the same split, seeded as the first, so it equals the run one would
get by passing those settings on the command line. The best by ``valid_metric`` is kept (a tie
keeps the earlier candidate, so the run's own settings win ties) and only it meets the test
users; the others' checkpoints are removed. Without validation users, or in a ``--nproc`` group,
there is nothing to search on (or the search is not supported) and the run's own settings are
kept, as the log says.

With ``size_search_average`` the candidates are not only compared but combined, by Caruana et
al.'s ensemble selection (2004) without repetition: starting from the best candidate, the one
whose addition gives the best validation score of the score average
(:class:`recbole_music.model.score_average.ScoreAverage`) joins while that score strictly
improves; the average of the members then meets the test users. The average can only match or
beat the best single candidate on the validation users, and it costs evaluations only: every
candidate is trained anyway.
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
    members: list = field(default_factory=list)  # a score average's candidates, best first


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
    average: Callable[[list[TrainedCandidate]], tuple[float, dict]] | None = None,
) -> tuple[TrainedCandidate, list[dict]]:
    """(the best of ``first`` and the candidates, a summary row per candidate).

    ``train()`` trains a fresh model under the current ``config``; each candidate's settings are
    written into ``config`` before it trains, and the chosen candidate's are left there (so the
    run's recorded settings and checkpoint agree with the model that is tested). With
    ``average`` (the validation score and result of a score average of the candidates given),
    the returned candidate is the selected average (its ``members``, best first; a single member
    when no average beats the best candidate) and the members' checkpoints are kept."""
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
    logger.info(
        set_color(f"{name} chosen on validation users", "green")
        + f": {_fmt(best.settings)} ({config['valid_metric']}={best.valid_score:.4f})"
    )
    members = [best]
    if average is not None:
        members, score, result = select_average(trained, best, average, config, logger)
        best = TrainedCandidate(
            best.model, best.trainer, score, result, dict(best.settings), members
        )
    for candidate in trained:
        if not any(candidate is m for m in members):
            _remove_checkpoint(candidate.trainer)
    summary = [
        {
            "settings": dict(c.settings),
            "valid_score": float(c.valid_score),
            "best_epoch": c.trainer.best_epoch,
            "chosen": c is members[0],
            **({"averaged": any(c is m for m in members)} if average is not None else {}),
        }
        for c in trained
    ]
    return best, summary


def select_average(trained, best, average, config, logger):
    """(members, best first; their average's validation score and result): ensemble selection
    from ``best``, adding the candidate that gives the best average while it strictly beats the
    members so far (a tie keeps the earlier candidate, as the search does)."""
    bigger = config["valid_metric_bigger"]
    members, score, result = [best], best.valid_score, best.valid_result
    while True:
        trial = None
        for candidate in trained:
            if any(candidate is m for m in members):
                continue
            trial_score, trial_result = average([*members, candidate])
            if trial is None or _better(trial_score, trial[1], bigger):
                trial = (candidate, trial_score, trial_result)
        if trial is None or not _better(trial[1], score, bigger):
            if trial is not None:
                logger.info(
                    f"  average + {_fmt(trial[0].settings)}: "
                    f"{config['valid_metric']}={trial[1]:.4f}, no better: not added"
                )
            break
        members.append(trial[0])
        score, result = trial[1], trial[2]
        logger.info(f"  average + {_fmt(trial[0].settings)}: {config['valid_metric']}={score:.4f}")
    logger.info(
        set_color("score average chosen on validation users", "green")
        + f": {len(members)} of {len(trained)} candidates "
        f"({config['valid_metric']}={score:.4f}; the best alone {best.valid_score:.4f})"
    )
    return members, score, result


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
