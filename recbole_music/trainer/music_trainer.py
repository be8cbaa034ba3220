"""The staged trainer of MuSiC: side users first, then overlapping users (paper §3.5).

Stage 1 trains :meth:`MuSiC.side_user_loss` on the side users' target interactions for
``stage1_epochs`` epochs at ``stage1_learning_rate`` (no validation: cold-start users cannot be
scored before the conditional stage). Stage 2 is RecBole's own ``fit`` — validation every
``eval_step`` epochs, early stopping, best-epoch checkpoints — over the training overlap users'
target interactions and the auxiliary interactions, with :meth:`MuSiC.joint_loss`.
Every batch's loss is checked: a NaN or inf stops training with the stage, epoch and batch.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from recbole.utils import set_color

from dataset_prep.progress import Progress
from recbole_music.config import setting
from recbole_music.distributed import is_main_process
from recbole_music.trainer.cold_start_trainer import CrossDomainTrainer
from recbole_music.trainer.weight_average import WeightAverage


class MuSiCTrainer(CrossDomainTrainer):
    # stage 2's weight average (ema_decay) and the training weights set aside while it is loaded
    _average: WeightAverage | None = None
    _live_weights: list[torch.Tensor] | None = None

    def stage_rows(self, dataset) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the training interactions each stage sees: (side, joint)."""
        feat = dataset.inter_feat
        users = feat[dataset.uid_field]
        target = (feat[dataset.domain_field] == dataset.target_domain_id).numpy()
        side = self.model.is_side.cpu()[users].numpy()
        train_overlap = self.model.is_train_overlap.cpu()[users].numpy()
        return np.flatnonzero(target & side), np.flatnonzero((target & train_overlap) | ~target)

    def _guard(self, stage: str, loss_func, epoch_idx: int):
        hint = "lower the learning rate or check the feature vectors"
        return self._finite_loss(f"MuSiC {stage}", loss_func, epoch_idx, hint)

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
        side_rows, joint_rows = self.stage_rows(dataset)
        self._train_side_users(dataset, side_rows, show_progress)
        if verbose:
            self.logger.info(
                set_color("MuSiC stage 2", "green") + ": overlapping users, "
                f"joint loss, {len(joint_rows)} interactions"
            )
        joint_data = self._stage_loader(dataset, joint_rows)
        hook = self._start_weight_average()
        try:
            return super().fit(joint_data, valid_data, verbose, saved, show_progress, callback_fn)
        finally:
            if hook is not None:
                hook.remove()

    # -- stage 2's weight average (ema_decay) ---------------------------------------------------
    def _start_weight_average(self):
        """With ``ema_decay`` > 0, an exponential moving average of the weights, updated after
        every stage-2 optimizer step, is what validation scores and checkpoints keep (as DDPM
        samples with EMA weights): one epoch's weights swing, their average less."""
        decay = float(setting(self.config, "ema_decay"))
        self._average, self._live_weights = None, None  # a fresh average for every fit
        if decay <= 0:
            return None
        self._average = WeightAverage(self.model, decay)
        return self.optimizer.register_step_post_hook(lambda *_: self._average.update())

    def extra_resume_state(self) -> dict:
        return self._average.state_dict() if self._average is not None else {}

    def load_extra_resume_state(self, state: dict) -> None:
        if self._average is not None and state:
            self._average.load_state_dict(state)

    @torch.no_grad()
    def _load_average(self):
        """Training weights aside, averaged ones in: validation and the checkpoint see these."""
        if self._average is None or self._live_weights is not None:
            return
        params = list(self.model.parameters())
        self._live_weights = [p.detach().clone() for p in params]
        for p, averaged in zip(params, self._average.average):
            p.copy_(averaged)

    @torch.no_grad()
    def _restore_live_weights(self):
        if self._live_weights is None:
            return
        for p, live in zip(self.model.parameters(), self._live_weights):
            p.copy_(live)
        self._live_weights = None

    def _valid_epoch(self, valid_data, show_progress=False):
        self._load_average()
        return super()._valid_epoch(valid_data, show_progress)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        # RecBole's fit calls this without a loss function: that is stage 2.
        if loss_func is None:
            self._restore_live_weights()
            loss_func = self._guard("stage 2", self.model.joint_loss, epoch_idx)
        return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)

    def _train_side_users(self, dataset, side_rows, show_progress):
        epochs = int(setting(self.config, "stage1_epochs"))
        if not self.model.use_side_users or epochs == 0:
            why = "use_side_users=False" if not self.model.use_side_users else "stage1_epochs=0"
            self.logger.info(set_color("MuSiC stage 1", "green") + f": skipped ({why})")
            return
        if len(side_rows) == 0:
            self.logger.warning(
                "MuSiC stage 1 skipped: this dataset has no side users (use_side_users has no "
                "effect)"
            )
            return
        self.logger.info(
            set_color("MuSiC stage 1", "green") + f": side users, unconditional "
            f"diffusion, {len(side_rows)} interactions, {epochs} epochs"
        )
        side_data = self._stage_loader(dataset, side_rows)
        stage2_optimizer = self.optimizer
        self.optimizer = self.stage1_optimizer()
        # stage 1 has no validation, so the run's epoch bar starts with stage 2: its own here
        # (stdout, beside the run's bar; quiet with --verbose, where the log lines show, and on
        # every process of a --nproc group but rank 0)
        with Progress(
            epochs,
            "MuSiC stage 1 (side users)",
            unit="epochs",
            enabled=is_main_process(self.config) and not self.config["verbose"],
            stream=sys.stdout,
        ) as progress:
            for epoch in range(epochs):
                loss = self._train_epoch(
                    side_data,
                    epoch,
                    self._guard("stage 1", self.model.side_user_loss, epoch),
                    show_progress,
                )
                self.logger.info(f"stage 1 epoch {epoch} train loss: {loss:.4f}")
                progress.update(1)
        self.optimizer = stage2_optimizer

    def stage1_optimizer(self):
        """Stage 1's own optimizer, at ``stage1_learning_rate`` (else stage 2's rate)."""
        return self._build_optimizer(
            learning_rate=float(setting(self.config, "stage1_learning_rate"))
        )
