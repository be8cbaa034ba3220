"""Evaluate a model on held-out cold-start users, with both NDCG conventions in one run.

RecBole's evaluator refuses value metrics (MAE, RMSE) and ranking metrics in one evaluation, and
value metrics with full-sort evaluation; the cold-start protocol needs both. So this evaluator
runs two passes over the held-out users and computes every metric with RecBole's own metric
classes (plus ``RatedNDCG``):

* rating pass — ``model.predict`` on each held-out (user, item, rating): MAE and RMSE pooled over
  all pairs (only for models that predict ratings), and rated-items NDCG@K per user;
* ranking pass — ``model.full_sort_predict`` per user over *target-domain items only*, the user's
  training items masked: RecBole's NDCG / Recall / Hit / MRR / Precision @K (full ranking).

Dual cold-start (``cold_item_ratio``): a model that does not say how it scores an item unseen in
training (``unseen_item_scoring``) gets :data:`UNSEEN_ITEM_FALLBACK` in both passes instead of
what its untrained parameters would say.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.evaluator.collector import DataStruct
from recbole.evaluator.register import metrics_dict

from recbole_music.config import OVERALL_YAML, setting

# The labels a result table prints next to each metric, so no number is read in the wrong sense.
CONVENTIONS = {
    "mae": "pooled over held-out ratings",
    "rmse": "pooled over held-out ratings",
    "ratedndcg": "rated items only, gain 2^r-1, mean over users (MuSiC paper)",
    "ndcg": "full ranking over all target items (RecBole)",
    "recall": "full ranking over all target items (RecBole)",
    "hit": "full ranking over all target items (RecBole)",
    "mrr": "full ranking over all target items (RecBole)",
    "precision": "full ranking over all target items (RecBole)",
}
UNSEEN_ITEM_FALLBACK = (
    "the evaluator's fallback: the user's mean over the target items seen in training, of the "
    "predicted ratings (rating pass) and of the ranking scores (ranking pass): an unseen item "
    "counts as an average item"
)
RANKING_METRICS_SUPPORTED = {"ndcg", "recall", "hit", "mrr", "precision", "map"}
RATING_ERROR_METRICS = {"mae", "rmse"}


def convention_of(metric_key: str) -> str:
    return CONVENTIONS.get(metric_key.split("@")[0], "")


def ranks_items(model) -> bool:
    """A model that gives every item the same score (GlobalMean) has no ranking to evaluate."""
    return bool(getattr(model, "ranks_items", True))


def predicts_ratings(model) -> bool:
    """Only models that regress ratings get MAE/RMSE; RecBole's built-ins output click scores."""
    return bool(getattr(model, "predicts_ratings", False))


def unseen_items_needing_fallback(model, dataset) -> torch.Tensor | None:
    """Mask [n_items] of the target items unseen in training that ``model`` has no way of its
    own to score; None when there are none (no dual cold-start, or the model has one)."""
    if getattr(model, "unseen_item_scoring", None) or not getattr(dataset, "has_cold_items", False):
        return None
    from recbole_music.data.dataset import SplitPart  # data imports this module's neighbours

    return dataset.item_split != SplitPart.TRAIN


def ranking_metrics_of(config, evaluator: str, note: str = "") -> list[str]:
    """``config["metrics"]`` lower-cased; a ValueError naming ``evaluator`` for unsupported ones."""
    metrics = [m.lower() for m in config["metrics"]]
    unsupported = set(metrics) - RANKING_METRICS_SUPPORTED
    if unsupported:
        raise ValueError(
            f"metrics {sorted(unsupported)} are not supported by the {evaluator} evaluator; "
            f"use any of {sorted(RANKING_METRICS_SUPPORTED)}{note}"
        )
    return metrics


class ColdStartEvaluator:
    def __init__(self, config):
        self.config = config
        self.ranking_metrics = ranking_metrics_of(
            config, "cold-start", " (full ranking over target items)"
        )
        rating_metrics = setting(config, "rating_metrics", OVERALL_YAML) or ()  # ~ = none
        self.rating_metrics = [m.lower() for m in rating_metrics]
        self.device = config["device"]

    @torch.no_grad()
    def evaluate(self, model, dataset) -> OrderedDict:
        """Metrics of ``model`` on the held-out users of ``dataset`` (a split from ``build()``)."""
        result = OrderedDict()
        if len(dataset) == 0:
            return result
        model.eval()
        if dataset.is_explicit and self.rating_metrics:
            result.update(self._rating_pass(model, dataset))
        if ranks_items(model):
            result.update(self._ranking_pass(model, dataset))
        return result

    # -- rating pass -----------------------------------------------------------------------
    def _rating_pass(self, model, dataset) -> dict:
        batch_size = self.config["eval_batch_size"]
        scores = []
        for start in range(0, len(dataset), batch_size):
            batch = dataset[torch.arange(start, min(start + batch_size, len(dataset)))]
            scores.append(model.predict(batch.to(self.device)).float().cpu().view(-1))
        scores = torch.cat(scores)
        unseen = unseen_items_needing_fallback(model, dataset)
        if unseen is not None:
            scores = self._unseen_item_ratings(model, dataset, scores, unseen)
        # [n, 1] columns, as RecBole's metrics squeeze(-1) them: a 1-D [1] would become 0-d
        struct = DataStruct()
        struct.set("rec.score", scores.view(-1, 1))
        struct.set("data.label", dataset.inter_feat[dataset.rating_field].float().view(-1, 1))
        struct.set("data.user_id", dataset.inter_feat[dataset.uid_field].view(-1, 1))
        metrics = self.rating_metrics
        if not predicts_ratings(model):
            # A click score is not a star rating: MAE/RMSE of it would be meaningless numbers.
            metrics = [m for m in metrics if m not in RATING_ERROR_METRICS]
        if not ranks_items(model):
            metrics = [m for m in metrics if m in RATING_ERROR_METRICS]
        out = {}
        for name in metrics:
            out.update(metrics_dict[name](self.config).calculate_metric(struct))
        return out

    def _unseen_item_ratings(self, model, dataset, scores, unseen) -> torch.Tensor:
        """``scores`` with each pair of an unseen item replaced by the user's mean *predicted
        rating* over the seen target items (``predict``'s scale: a model's full-ranking scores
        need not be ratings)."""
        uid, iid = dataset.uid_field, dataset.iid_field
        users = dataset.inter_feat[uid]
        rows = unseen[dataset.inter_feat[iid]]
        if not rows.any():
            return scores
        needing = torch.unique(users[rows])
        warm = torch.nonzero(dataset.target_item_mask & ~unseen).flatten()
        fallback = torch.empty(dataset.user_num)
        per_batch = max(self.config["eval_batch_size"] // len(warm), 1)
        for b in range(0, len(needing), per_batch):
            batch = needing[b : b + per_batch]
            pairs = Interaction(
                {uid: batch.repeat_interleave(len(warm)), iid: warm.repeat(len(batch))}
            )
            predicted = model.predict(pairs.to(self.device)).float().view(len(batch), -1)
            fallback[batch] = predicted.mean(dim=1).cpu()
        scores = scores.clone()
        scores[rows] = fallback[users[rows]]
        return scores

    # -- ranking pass ----------------------------------------------------------------------
    def _ranking_pass(self, model, dataset) -> dict:
        _, struct = self._ranked_hits(model, dataset)
        out = {}
        for name in self.ranking_metrics:
            out.update(metrics_dict[name](self.config).calculate_metric(struct))
        return out

    @torch.no_grad()
    def per_user_ranking(self, model, dataset) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Each held-out user's full-ranking metrics, for paired comparisons of two models on
        the same users: (user ids in ascending order, {"ndcg@20": one value per user, ...}).
        Their means are the numbers :meth:`evaluate` reports (before its rounding)."""
        if len(dataset) == 0:
            return np.empty(0, dtype=np.int64), {}
        model.eval()
        users, struct = self._ranked_hits(model, dataset)
        out = {}
        for name in self.ranking_metrics:
            metric = metrics_dict[name](self.config)
            pos_index, pos_len = metric.used_info(struct)
            # Hit, MRR and Precision need the hits only; NDCG, Recall and MAP the count too
            wants_count = len(inspect.signature(metric.metric_info).parameters) > 1
            args = (pos_index, pos_len) if wants_count else (pos_index,)
            values = metric.metric_info(*args)  # [users, max K]
            for k in self.config["topk"]:
                out[f"{name}@{k}"] = values[:, k - 1]
        return users, out

    def _ranked_hits(self, model, dataset) -> tuple[np.ndarray, DataStruct]:
        """(held-out users, ascending; the ``rec.topk`` struct RecBole's top-K metrics read: per
        user, whether each of the top max(K) target items is a held-out one, then their count)."""
        uid, iid = dataset.uid_field, dataset.iid_field
        users = dataset.inter_feat[uid].numpy()
        items = dataset.inter_feat[iid].numpy()
        order = np.argsort(users, kind="stable")
        users, items = users[order], items[order]
        eval_users, starts = np.unique(users, return_index=True)
        ends = np.r_[starts[1:], len(users)]

        target_mask = dataset.target_item_mask.to(self.device)
        target_items = torch.nonzero(target_mask).flatten()
        history = dataset.train_item_matrix
        topk = max(self.config["topk"])
        per_batch = max(self.config["eval_batch_size"] // dataset.item_num, 1)
        unseen = unseen_items_needing_fallback(model, dataset)
        rows = []
        for b in range(0, len(eval_users), per_batch):
            batch_users = eval_users[b : b + per_batch]
            scores = self._full_scores(model, dataset, batch_users, target_items, unseen)
            scores = scores.masked_fill(~target_mask, -np.inf)
            seen = history[batch_users].tocoo()
            scores[torch.from_numpy(seen.row).long(), torch.from_numpy(seen.col).long()] = -np.inf
            top = torch.topk(scores, min(topk, len(target_items)), dim=-1).indices.cpu()
            hits = torch.zeros(len(batch_users), dataset.item_num, dtype=torch.int)
            for row, u in enumerate(range(b, b + len(batch_users))):
                hits[row, torch.from_numpy(items[starts[u] : ends[u]])] = 1
            pos_len = hits.sum(dim=1, keepdim=True)
            top_hits = torch.gather(hits, 1, top)
            if top_hits.shape[1] < topk:  # fewer target items than K: the rest are misses
                pad = torch.zeros(len(batch_users), topk - top_hits.shape[1], dtype=torch.int)
                top_hits = torch.cat([top_hits, pad], dim=1)
            rows.append(torch.cat([top_hits, pos_len], dim=1))
        struct = DataStruct()
        struct.set("rec.topk", torch.cat(rows))
        return eval_users, struct

    def _full_scores(self, model, dataset, batch_users, target_items, unseen=None):
        """Scores [batch, n_items]; ``unseen`` items (a mask) get each user's mean score over the
        other target items (:data:`UNSEEN_ITEM_FALLBACK`)."""
        scores = self._model_scores(model, dataset, batch_users, target_items)
        if unseen is not None:
            unseen = unseen.to(scores.device)
            warm = dataset.target_item_mask.to(scores.device) & ~unseen
            mean = scores[:, warm].mean(dim=1, keepdim=True)
            scores[:, unseen] = mean.expand(-1, int(unseen.sum()))
        return scores

    def _model_scores(self, model, dataset, batch_users, target_items) -> torch.Tensor:
        """Scores [batch, n_items]; falls back to ``predict`` on target items, as RecBole does."""
        uid, iid = dataset.uid_field, dataset.iid_field
        user_tensor = torch.from_numpy(batch_users).long().to(self.device)
        try:
            flat = model.full_sort_predict(Interaction({uid: user_tensor}))
            return flat.view(len(batch_users), -1).float()
        except NotImplementedError:
            n = len(target_items)
            pairs = Interaction(
                {
                    uid: user_tensor.repeat_interleave(n),
                    iid: target_items.repeat(len(batch_users)),
                }
            )
            scores = torch.full((len(batch_users), dataset.item_num), -np.inf, device=self.device)
            scores[:, target_items] = model.predict(pairs).float().view(len(batch_users), n)
            return scores
