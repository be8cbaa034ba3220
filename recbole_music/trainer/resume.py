"""Training that continues where an interrupted run stopped (the ``resume_dir`` setting).

A real-data run can train for hours; a machine that reboots or a job killed at its time limit
should not cost those hours again. With ``resume_dir`` set, every ``fit`` writes, before each of
its training epochs, what that epoch starts from:

* the model's and the optimizer's state, the early-stopping counters, the best validation result
  and the path of the best epoch's checkpoint;
* the random generators — torch's, numpy's (RecBole's negative sampler), Python's, and the
  shuffling generator of the training loader — so the epochs after a resume draw what they would
  have drawn: a resumed run's numbers equal an uninterrupted run's;
* whatever the trainer keeps besides (:meth:`extra_resume_state`: MuSiC's weight average).

The file is named by a fingerprint of the run — its settings (less the ones that only say where
output goes), the training interactions themselves, and which ``fit`` of the trainer it is — so a
rerun of the same command on the same data finds it and any other run cannot. A rerun of a
finished run finds the state before its last epoch, trains that one epoch again and ends as it
did. What a trainer does before its fit's epochs runs again on a resume (MuSiC's stage 1, a
mapping baseline's base MFs: minutes), and is then replaced by the saved state. Files are safe
checkpoints (tensors and plain data, :mod:`recbole_music.checkpoint`), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from recbole_music.checkpoint import (
    CheckpointError,
    checkpoint_state,
    plain_settings,
    write_checkpoint,
)

# Settings that say where output goes or how it is shown, not what is trained: a rerun may change
# them and still continue the same training.
OUTPUT_SETTINGS = frozenset(
    {"resume_dir", "checkpoint_dir", "state", "show_progress", "verbose", "log_wandb"}
)


def fingerprint(config, train_data, fit_index: int) -> str:
    """A short hash of what the training depends on: settings, training rows, which fit."""
    settings = {k: v for k, v in plain_settings(config).items() if k not in OUTPUT_SETTINGS}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    dataset = train_data._dataset
    for field in (dataset.uid_field, dataset.iid_field):
        digest.update(dataset.inter_feat[field].numpy().tobytes())
    digest.update(str(fit_index).encode())
    return digest.hexdigest()[:16]


def _random_state() -> dict:
    name, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_random_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["gauss"],
        )
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class TrainingResume:
    """One fit's resume file: :meth:`restore` before the fit, :meth:`save` before each epoch."""

    def __init__(self, trainer, train_data, fit_index: int):
        folder = Path(trainer.config["resume_dir"])
        if folder.exists() and not folder.is_dir():
            raise CheckpointError(f"resume_dir {folder} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        model = type(trainer.model).__name__
        self.path = folder / f"{model}-{fingerprint(trainer.config, train_data, fit_index)}.pth"
        self.train_data = train_data
        self._pending_random = None  # restored at the first epoch, after any set-up draws

    def restore(self, trainer) -> None:
        """Put ``trainer`` where its saved state left off (nothing when there is none)."""
        if not self.path.is_file():
            trainer.logger.info(f"resume: no saved state for this run yet, {self.path} from now")
            return
        state = trainer.load_checkpoint(self.path)  # model weights and other parameters
        best_file = state["saved_model_file"]
        if state["best_epoch"] is not None and not os.path.isfile(best_file):
            raise CheckpointError(
                f"resume state {self.path} needs the best epoch's checkpoint {best_file}, which "
                "is gone; delete the resume state to train from the start"
            )
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.start_epoch = state["epoch"]
        trainer.cur_step = state["cur_step"]
        trainer.best_valid_score = state["best_valid_score"]
        trainer.best_valid_result = state["best_valid_result"]
        trainer.best_epoch = state["best_epoch"]
        if state["best_epoch"] is not None:  # the run keeps writing its own best checkpoint
            trainer.saved_model_file = best_file
            trainer._checkpoint_reserved = True
        trainer.load_extra_resume_state(state["extra"])
        self._pending_random = state["random"]
        trainer.resumed_from_epoch = state["epoch"]
        # a warning: the console shows it, so nobody mistakes the run for a fresh one
        trainer.logger.warning(
            f"resume: continuing from epoch {state['epoch']}, the state saved in {self.path} "
            "(delete it to train from the start)"
        )

    def save(self, trainer, epoch: int) -> None:
        """The state epoch ``epoch`` starts from (random generators first restored, on the
        first epoch after a resume, to what they were when it was saved)."""
        if self._pending_random is not None:
            _set_random_state(self._pending_random["global"])
            self.train_data.generator.set_state(self._pending_random["loader"])
            self._pending_random = None
            return  # the file on disk already holds this very state
        state = checkpoint_state(trainer, epoch)  # model, optimizer, counters
        result = trainer.best_valid_result or {}
        state.update(
            best_valid_result={k: float(v) for k, v in result.items()},
            best_epoch=trainer.best_epoch,
            saved_model_file=os.path.abspath(trainer.saved_model_file),
            extra=trainer.extra_resume_state(),
            random={"global": _random_state(), "loader": self.train_data.generator.get_state()},
        )
        write_checkpoint(state, self.path)
