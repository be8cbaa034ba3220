"""Trainers for the cold-start protocol: RecBole's training loop, our evaluation.

``with_cold_start_evaluation(TrainerClass)`` gives any RecBole trainer (``Trainer``,
``TraditionalTrainer``, a model's own) two changes and nothing else:

* ``evaluate`` runs :class:`ColdStartEvaluator` on the held-out users (rating and ranking passes,
  both NDCG conventions), whether it is handed our split datasets or RecBole's eval dataloaders,
  so early stopping, ``valid_metric`` and the returned result dicts work as in RecBole;
* checkpoints hold tensors, numbers and plain settings only, and load with
  ``weights_only=True`` (:mod:`recbole_music.checkpoint`): a checkpoint cannot run code, and a
  pickled one (RecBole's own format, a foreign file) is refused;
* each run owns its checkpoint file, and writes it atomically. RecBole names it
  ``<model>-<local time to the second>.pth``: two runs started in the same second in one
  ``checkpoint_dir`` (a grid launched with ``&``) would overwrite each other's best epoch and each
  test the other's model, silently. At its first save a run claims the name with an exclusive
  create (``-2``, ``-3`` … appended when it is taken), and every save goes through a temporary
  file and ``os.replace``, so an interrupted save leaves the previous best checkpoint whole;
* with ``resume_dir`` set, each fit keeps its state there before every epoch and a rerun
  continues from it (:mod:`recbole_music.trainer.resume`);
* with several processes (``--nproc``, :mod:`recbole_music.distributed`): the DDP wrapper fits
  the device (RecBole's pins a GPU per process), rank 0 alone validates and saves, and every
  process receives its validation result.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from recbole.data.dataset import Dataset
from recbole.data.utils import get_dataloader
from recbole.trainer import TraditionalTrainer, Trainer
from recbole.utils import set_color

from recbole_music.checkpoint import checkpoint_state, read_checkpoint, write_checkpoint
from recbole_music.distributed import (
    broadcast_json,
    is_distributed,
    is_main_process,
    wrap_for_processes,
)
from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator
from recbole_music.trainer.resume import TrainingResume


class ColdStartEvaluationMixin:
    """Put first in the bases of a RecBole trainer class."""

    evaluator_class = ColdStartEvaluator  # the protocol's evaluator (sequential: its own)

    _checkpoint_reserved = False  # set once this run owns saved_model_file
    best_epoch = None  # the epoch of the last checkpoint saved (the best, or the last one)
    epochs_trained = 0  # epochs of the last fit (a resumed run counts from its start epoch)
    _resume: TrainingResume | None = None  # during a fit with resume_dir set
    _fits = 0  # fits started by this trainer: a staged trainer's fits resume apart
    resumed_from_epoch = None  # the epoch a resumed fit continued from (resume_dir)

    def __init__(self, config, model):
        if not is_distributed(config):
            super().__init__(config, model)
            return
        # RecBole's constructor wraps the model in DDP with device_ids=[local_rank], a GPU per
        # process; build the rest as for one process and wrap it to fit the device instead.
        config["single_spec"] = True
        try:
            super().__init__(config, model)
        finally:
            config["single_spec"] = False
        self.distributed_model = wrap_for_processes(self.model, config)
        self.model = self.distributed_model.module

    def fit(
        self,
        train_data,
        valid_data=None,
        verbose=True,
        saved=True,
        show_progress=False,
        callback_fn=None,
    ):
        if not isinstance(self, Trainer):  # RecBole's tree trainers: no epochs, no callback
            return super().fit(train_data, valid_data, verbose, saved, show_progress)
        self._fits += 1
        if self.config["resume_dir"] and is_distributed(self.config):
            self.logger.warning("resume_dir is not used by a run on several processes (--nproc)")
        elif self.config["resume_dir"]:
            self._resume = TrainingResume(self, train_data, self._fits)
            self._resume.restore(self)
        try:
            return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        finally:
            self._resume = None

    def extra_resume_state(self) -> dict:
        """What a trainer keeps across epochs besides the model and optimizer (tensors and plain
        data), saved for a resume; :meth:`load_extra_resume_state` puts it back."""
        return {}

    def load_extra_resume_state(self, state: dict) -> None:
        pass

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        if self._resume is not None:
            self._resume.save(self, epoch_idx)
        self.epochs_trained = epoch_idx + 1
        return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)

    def stopped_by(self) -> str | None:
        """How the last fit ended: ``early stopping`` (validation stopped improving for more
        than ``stopping_step`` evaluations), ``epoch limit`` (it ran all ``epochs``: not
        converged, or no validation users), or None for a trainer without epochs (a closed-form
        model, which RecBole's TraditionalTrainer passes over the data once)."""
        if not self.epochs_trained or isinstance(self, TraditionalTrainer):
            return None
        # RecBole's fit leaves its loop early only when this count passed stopping_step
        return "early stopping" if self.cur_step > self.stopping_step else "epoch limit"

    def _valid_epoch(self, valid_data, show_progress=False):
        if not is_distributed(self.config):
            return super()._valid_epoch(valid_data, show_progress)
        answer = None
        if is_main_process(self.config):
            score, result = super()._valid_epoch(valid_data, show_progress)
            answer = [float(score), {k: float(v) for k, v in (result or {}).items()}]
        score, result = broadcast_json(answer, self.config)
        return score, result

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not isinstance(self, Trainer):  # RecBole's tree trainers: their own signature
            return super()._save_checkpoint(epoch)
        if not is_main_process(self.config):  # rank 0 writes the group's checkpoint
            self.best_epoch = epoch
            return
        target = kwargs.pop("saved_model_file", None)
        if target is None:
            if not self._checkpoint_reserved:
                self.saved_model_file = reserve_file(self.saved_model_file)
                self._checkpoint_reserved = True
            target = self.saved_model_file
        try:
            write_checkpoint(checkpoint_state(self, epoch), target)
        finally:
            _remove_if_empty(target)  # a reservation whose first save failed
        self.best_epoch = epoch
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {target}")

    def load_checkpoint(self, checkpoint_file) -> dict:
        checkpoint = read_checkpoint(checkpoint_file, map_location=self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(set_color("Loaded model parameters from", "blue") + f" {checkpoint_file}")
        return checkpoint

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        self.saved_model_file = resume_file
        self._checkpoint_reserved = True  # a resumed run keeps writing its own file
        checkpoint = self.load_checkpoint(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return None
        if load_best_model:
            self.load_checkpoint(model_file or self.saved_model_file)
        result = self.evaluate_model(self.model, eval_data)
        self.wandblogger.log_eval_metrics(result, head="eval")
        return result

    @torch.no_grad()
    def evaluate_model(self, model, eval_data):
        """The protocol's metrics of ``model`` (not necessarily this trainer's: a score average
        of several, recbole_music/size_search.py) on ``eval_data``, as :meth:`evaluate` gives."""
        dataset = eval_data if isinstance(eval_data, Dataset) else eval_data._dataset
        if not hasattr(self, "_protocol_evaluator"):
            self._protocol_evaluator = self.evaluator_class(self.config)
        return self._protocol_evaluator.evaluate(model, dataset)


def reserve_file(path: str) -> str:
    """``path``, or ``<stem>-2<ext>``, ``<stem>-3<ext>`` … : the first name no other run holds,
    claimed with an exclusive create (an empty file until the run writes it: a checkpoint's
    first save, a log's first line)."""
    stem, ext = os.path.splitext(path)
    candidate, n = path, 1
    while True:
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return candidate
        except FileExistsError:
            n += 1
            candidate = f"{stem}-{n}{ext}"


def _remove_if_empty(path: str) -> None:
    try:
        if os.path.getsize(path) == 0:
            os.remove(path)
    except OSError:
        pass


_wrapped: dict[type, type] = {}


def with_cold_start_evaluation(trainer_class: type) -> type:
    """The subclass of ``trainer_class`` that evaluates by the cold-start protocol (cached)."""
    if issubclass(trainer_class, ColdStartEvaluationMixin):
        return trainer_class
    if trainer_class not in _wrapped:
        _wrapped[trainer_class] = type(
            f"ColdStart{trainer_class.__name__}", (ColdStartEvaluationMixin, trainer_class), {}
        )
    return _wrapped[trainer_class]


class CrossDomainTrainer(ColdStartEvaluationMixin, Trainer):
    """RecBole's ``Trainer`` with cold-start evaluation; the trainer of the plugin's models."""

    def _stage_loader(self, dataset, rows: np.ndarray):
        """A shuffled training loader over the given interaction rows (one training stage)."""
        subset = dataset.copy(dataset.inter_feat[torch.from_numpy(rows)])
        return get_dataloader(self.config, "train")(self.config, subset, None, shuffle=True)

    @staticmethod
    def _finite_loss(label: str, loss_func, epoch_idx: int, hint: str):
        """``loss_func`` that stops training on a NaN/inf loss, naming ``label``, epoch and batch."""
        state = {"batch": 0}

        def guarded(interaction):
            loss = loss_func(interaction)
            if not torch.isfinite(loss).all():
                raise FloatingPointError(
                    f"{label}: loss is {loss.item()} at epoch {epoch_idx}, batch "
                    f"{state['batch']}: {hint}"
                )
            state["batch"] += 1
            return loss

        return guarded
