"""Trainers for the cold-start protocol: RecBole's training loop, our evaluation.

``with_cold_start_evaluation(TrainerClass)`` gives any RecBole trainer (``Trainer``,
``TraditionalTrainer``, a model's own) two changes and nothing else:

* ``evaluate`` runs :class:`ColdStartEvaluator` on the held-out users (rating and ranking passes,
  both NDCG conventions), whether it is handed our split datasets or RecBole's eval dataloaders,
  so early stopping, ``valid_metric`` and the returned result dicts work as in RecBole;
* checkpoints reload on torch >= 2.6, whose ``torch.load`` defaults to ``weights_only=True`` and
  refuses RecBole's checkpoints (they pickle the Config). We load them with
  ``weights_only=False`` — they are files this trainer wrote itself.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataset import Dataset
from recbole.data.utils import get_dataloader
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_music.evaluation.cold_start_evaluator import ColdStartEvaluator


class ColdStartEvaluationMixin:
    """Put first in the bases of a RecBole trainer class."""

    evaluator_class = ColdStartEvaluator  # the protocol's evaluator (sequential: its own)

    def load_checkpoint(self, checkpoint_file) -> dict:
        checkpoint = torch.load(str(checkpoint_file), map_location=self.device, weights_only=False)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(set_color("Loaded model parameters from", "blue") + f" {checkpoint_file}")
        return checkpoint

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        self.saved_model_file = resume_file
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
        dataset = eval_data if isinstance(eval_data, Dataset) else eval_data._dataset
        if not hasattr(self, "_protocol_evaluator"):
            self._protocol_evaluator = self.evaluator_class(self.config)
        result = self._protocol_evaluator.evaluate(self.model, dataset)
        self.wandblogger.log_eval_metrics(result, head="eval")
        return result


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
