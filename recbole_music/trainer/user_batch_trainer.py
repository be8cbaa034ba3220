"""Training over the training overlap users' interactions, in batches of whole users.

Review-based models (CATN) encode a user's review documents for every batch the user appears
in. RecBole's loader shuffles interactions, so a user with 35 interactions is encoded in ~25
batches of an epoch; here an epoch visits the users in a fresh seeded order and a batch holds
whole users (a user is split only at a batch boundary), so each document is encoded about once
per epoch. The model's ``training_rows(dataset)`` says which interactions train (CATN: the
training overlap users'; OmniMatch: also the held-out users' auxiliary-domain ones).
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.utils import get_dataloader

from recbole_music.trainer.cold_start_trainer import CrossDomainTrainer


class UserBatchTrainer(CrossDomainTrainer):
    _dataset = None

    def fit(
        self,
        train_data,
        valid_data=None,
        verbose=True,
        saved=True,
        show_progress=False,
        callback_fn=None,
    ):
        self._dataset = train_data._dataset
        users = self._dataset.inter_feat[self._dataset.uid_field]
        self._rows = np.flatnonzero(self.model.training_rows(self._dataset).numpy())
        self._users = users.numpy()[self._rows]
        if len(self._rows) == 0:
            raise ValueError(
                f"{self.config['model']} trains on overlapping users with target-domain "
                "training interactions; this split has none (lower cold_ratio / valid_ratio)"
            )
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)

    def user_batches(self, epoch_idx: int):
        """A loader over the training rows, users in a seeded order of this epoch."""
        rng = np.random.default_rng([int(self.config["seed"]), int(epoch_idx)])
        rank = np.empty(self._dataset.user_num, dtype=np.int64)
        rank[rng.permutation(self._dataset.user_num)] = np.arange(self._dataset.user_num)
        order = self._rows[np.argsort(rank[self._users], kind="stable")]
        subset = self._dataset.copy(self._dataset.inter_feat[torch.from_numpy(order)])
        return get_dataloader(self.config, "train")(self.config, subset, None, shuffle=False)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        return super()._train_epoch(
            self.user_batches(epoch_idx), epoch_idx, loss_func, show_progress
        )
