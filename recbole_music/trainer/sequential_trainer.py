"""Trainers for cross-domain sequential models: RecBole's training loop, next-item evaluation.

``with_sequential_evaluation(TrainerClass)`` gives any RecBole trainer the
:class:`SequentialEvaluator` (held-out users' last target item, ranked over target items), the
checkpoint loading of the cold-start trainers (torch >= 2.6), and the training objective that
every sequential model shares (:func:`training_objective`: the same softmax for LLMEMF, SASRec,
GRU4Rec, ...). Early stopping, ``valid_metric`` and checkpoints work as in RecBole.
"""

from __future__ import annotations

from recbole.trainer import Trainer

from recbole_music.evaluation.sequential_evaluator import SequentialEvaluator
from recbole_music.model.sequential_loss import training_objective
from recbole_music.trainer.cold_start_trainer import ColdStartEvaluationMixin


class SequentialEvaluationMixin(ColdStartEvaluationMixin):
    """Put first in the bases of a RecBole trainer class."""

    evaluator_class = SequentialEvaluator
    objective = None  # set by use_objective before training: the loss and its description

    def use_objective(self, dataset):
        self.objective = training_objective(self.config, self.model, dataset)
        self.logger.info(f"{self.config['model']} training objective: {self.objective.description}")

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if loss_func is None:
            if self.objective is None:
                self.use_objective(train_data._dataset)
            loss_func = self.objective.loss
        return super()._train_epoch(
            train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress
        )


_wrapped: dict[type, type] = {}


def with_sequential_evaluation(trainer_class: type) -> type:
    """The subclass of ``trainer_class`` that evaluates next target items (cached)."""
    if issubclass(trainer_class, SequentialEvaluationMixin):
        return trainer_class
    if issubclass(trainer_class, ColdStartEvaluationMixin):  # a cold-start wrapper: unwrap it
        trainer_class = next(
            b for b in trainer_class.__mro__[1:] if not issubclass(b, ColdStartEvaluationMixin)
        )
    if trainer_class not in _wrapped:
        _wrapped[trainer_class] = type(
            f"Sequential{trainer_class.__name__}", (SequentialEvaluationMixin, trainer_class), {}
        )
    return _wrapped[trainer_class]


class SequentialCrossDomainTrainer(SequentialEvaluationMixin, Trainer):
    """RecBole's ``Trainer`` with next-item evaluation; the trainer of LLMEMF."""
