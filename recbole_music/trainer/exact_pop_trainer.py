"""Exact counts for RecBole's ``Pop`` in plugin runs.

RecBole 1.2.1's ``Pop.calculate_loss`` adds one per item and batch with fancy indexing
(``item_cnt[item] = item_cnt[item] + 1``): an item that occurs several times in one batch is
counted once, so popular items are undercounted; and with negative sampling on, sampled negatives
are counted as interactions. :class:`ExactPopTrainer` sets the counts instead from every training
interaction, once each, so ``Pop`` ranks by the exact training popularity (on the target items
the same order as ``ItemMean`` on implicit data).
"""

from __future__ import annotations

import torch
from recbole.trainer import TraditionalTrainer


class ExactPopTrainer(TraditionalTrainer):
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        model = self.model
        items = train_data._dataset.inter_feat[model.ITEM_ID]
        counts = torch.bincount(items, minlength=model.n_items).view(-1, 1)
        model.item_cnt = counts.to(model.item_cnt)
        model.max_cnt = torch.max(model.item_cnt, dim=0)[0]
        return 0.0
