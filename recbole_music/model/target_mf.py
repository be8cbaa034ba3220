"""TargetMF: matrix factorisation trained on the target domain only.

It has never seen a cold-start user in the target domain, so for them it falls back to the
global mean plus item bias (their user factors stay at their initial values) — the floor every
cross-domain transfer method must beat.

* ratings: ``r = mu + b_u + b_i + <p_u, q_i>``, mean squared error on target ratings;
* implicit data: ``s = b_i + <p_u, q_i>``, binary cross-entropy of each target interaction against
  ``num_negatives`` target-domain items drawn uniformly (sampled here, not by RecBole's sampler,
  which would draw from both domains).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.utils import InputType, ModelType

from recbole_music.config import setting
from recbole_music.model.target_domain_base import TargetDomainRecommender


class TargetMF(TargetDomainRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.GENERAL

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.predicts_ratings = self.explicit
        dim = config["embedding_size"]
        self.num_negatives = int(setting(config, "num_negatives"))
        self.reg_weight = float(setting(config, "reg_weight"))
        self._add_biased_factors(dim, float(setting(config, "init_std")))
        _, _, ratings = self.target_training_stats(dataset)
        mean = ratings.mean().item() if ratings is not None and len(ratings) else 0.0
        self.register_buffer("global_mean", torch.tensor(mean, dtype=torch.float))
        self.register_buffer("target_items", torch.nonzero(dataset.target_item_mask).flatten())

    def _score(self, users, items):
        dot = (self.user_factors(users) * self.item_factors(items)).sum(-1)
        score = dot + self.item_bias(items).squeeze(-1)
        if self.explicit:
            score = score + self.global_mean + self.user_bias(users).squeeze(-1)
        return score

    def _l2(self, users, items):
        return (
            self.reg_weight
            * (
                self.user_factors(users).pow(2).sum(-1) + self.item_factors(items).pow(2).sum(-1)
            ).mean()
        )

    def calculate_loss(self, interaction):
        rows = self.target_rows(interaction)
        users, items = interaction[self.USER_ID][rows], interaction[self.ITEM_ID][rows]
        if len(users) == 0:  # a batch of auxiliary interactions only
            return self.item_bias.weight.sum() * 0.0
        if self.explicit:
            loss = F.mse_loss(self._score(users, items), interaction[self.RATING][rows].float())
            return loss + self._l2(users, items)
        neg_users = users.repeat_interleave(self.num_negatives)
        pick = torch.randint(len(self.target_items), (len(neg_users),), device=users.device)
        neg_items = self.target_items[pick]
        logits = torch.cat([self._score(users, items), self._score(neg_users, neg_items)])
        labels = torch.cat([torch.ones(len(users)), torch.zeros(len(neg_users))]).to(logits)
        return F.binary_cross_entropy_with_logits(logits, labels) + self._l2(users, items)

    def predict(self, interaction):
        return self._score(interaction[self.USER_ID], interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID]
        scores = self.user_factors(users) @ self.item_factors.weight.T
        scores = scores + self.item_bias.weight.view(1, -1)
        if self.explicit:
            scores = scores + self.global_mean + self.user_bias(users)
        return scores.view(-1)
