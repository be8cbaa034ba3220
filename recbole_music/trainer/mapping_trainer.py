"""The staged trainer of the mapping baselines: base MF (cached), then the mapping.

Stage 1 — the base MF of each domain: loaded from the cache of this split when another
baseline already trained it, else trained and cached (:func:`base_mf.load_or_train_base_vectors`).
Stage 2 — RecBole's own ``fit`` (validation every ``eval_step`` epochs, early stopping, best-epoch
checkpoints) over the rows :meth:`MappingRecommender.stage_rows` names — overlapping training
users' target interactions (plus, for SSCDR and LACDR, what their unsupervised parts use), never
a held-out user's target interaction. A non-finite loss stops training with the epoch and batch.
"""

from __future__ import annotations

from recbole.utils import set_color

from recbole_music.model.baselines.base_mf import load_or_train_base_vectors
from recbole_music.trainer.cold_start_trainer import CrossDomainTrainer


class MappingTrainer(CrossDomainTrainer):
    base_origin: str | None = None  # "trained" or "cache", after fit

    def prepare_base(self, dataset) -> None:
        """Stage 1: the per-domain base MFs, into the model's frozen buffers."""
        name = type(self.model).__name__
        self.logger.info(set_color(f"{name} stage 1", "green") + ": base MF of each domain")
        base = load_or_train_base_vectors(self.config, dataset)
        self.base_origin = base.origin
        self.model.load_base(base)

    def fit(
        self,
        train_data,
        valid_data=None,
        verbose=True,
        saved=True,
        show_progress=False,
        callback_fn=None,
    ):
        dataset = train_data._dataset
        self.prepare_base(dataset)
        rows = self.model.stage_rows(dataset)
        if verbose:
            self.logger.info(
                set_color(f"{type(self.model).__name__} stage 2", "green")
                + f": mapping, {len(rows)} training rows"
            )
        stage_data = self._stage_loader(dataset, rows)
        return super().fit(stage_data, valid_data, verbose, saved, show_progress, callback_fn)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        loss_func = loss_func or self._guarded(epoch_idx)
        return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)

    def _guarded(self, epoch_idx: int):
        name = type(self.model).__name__
        return self._finite_loss(
            name, self.model.calculate_loss, epoch_idx, "lower the learning rate"
        )
