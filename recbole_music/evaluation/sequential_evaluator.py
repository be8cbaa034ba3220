"""Next-item evaluation of sequential models on the held-out users' last target item.

Each example of a valid/test split (:class:`SequentialCrossDomainDataset`) is one user's input
sequence and their last target-domain item. ``model.full_sort_predict`` scores every item; the
ranking is over **target-domain items only** (auxiliary items and the padding id are masked), and
— RecBole's convention for sequential models, and C2DSR's — items already in the sequence are
NOT masked (people buy again). The metrics are RecBole's own classes (Hit, NDCG, MRR, ...), one
relevant item per user.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from recbole.evaluator.collector import DataStruct
from recbole.evaluator.register import metrics_dict

from recbole_music.evaluation.cold_start_evaluator import ranking_metrics_of

SEQUENTIAL_CONVENTION = "next target item, full ranking over all target items (RecBole sequential)"


def sequential_conventions(keys) -> dict:
    return {key: SEQUENTIAL_CONVENTION for key in keys}


class SequentialEvaluator:
    def __init__(self, config):
        self.config = config
        self.metrics = ranking_metrics_of(config, "sequential")
        self.device = config["device"]

    @torch.no_grad()
    def evaluate(self, model, dataset) -> OrderedDict:
        result = OrderedDict()
        if len(dataset) == 0:
            return result
        model.eval()
        topk = max(self.config["topk"])
        target_mask = dataset.target_item_mask.to(self.device)
        n_target = int(target_mask.sum())
        labels = dataset.inter_feat[dataset.iid_field]
        if not bool(dataset.target_item_mask[labels].all()):
            raise ValueError("sequential evaluation: a label is not a target-domain item")
        per_batch = max(int(self.config["eval_batch_size"]) // dataset.item_num, 1)
        rows = []
        for start in range(0, len(dataset), per_batch):
            index = torch.arange(start, min(start + per_batch, len(dataset)))
            batch = dataset.inter_feat[index].to(self.device)
            scores = model.full_sort_predict(batch).view(len(index), -1).float()
            scores = scores.masked_fill(~target_mask, -np.inf)
            top = torch.topk(scores, min(topk, n_target), dim=-1).indices
            hits = (top == batch[dataset.iid_field].view(-1, 1)).int().cpu()
            if hits.shape[1] < topk:  # fewer target items than K: the rest are misses
                hits = torch.cat(
                    [hits, torch.zeros(len(index), topk - hits.shape[1], dtype=torch.int)], dim=1
                )
            rows.append(torch.cat([hits, torch.ones(len(index), 1, dtype=torch.int)], dim=1))
        struct = DataStruct()
        struct.set("rec.topk", torch.cat(rows))
        for name in self.metrics:
            result.update(metrics_dict[name](self.config).calculate_metric(struct))
        return result
