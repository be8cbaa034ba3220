"""CMF (Singh & Gordon, "Relational Learning via Collective Matrix Factorization", KDD 2008), as
the cold-start cross-domain literature runs it (PTUPCDR's and DiffCDR's code: one MF over the
merged interactions of both domains).

Users have **one** factor vector and bias shared by both domains; items (each in one domain) have
their own; each domain has its own global mean:

* ratings: ``r = mu_domain + b_u + b_i + <p_u, q_i>``, squared error on every training
  interaction of both domains, the auxiliary ones weighted by ``aux_weight`` (CMF's trade-off
  between the two relations; 1 = the plain merge of the literature's code), + L2 on the factors;
* implicit data: ``s = b_i + <p_u, q_i>``, BCE of each interaction against ``num_negatives`` items
  of the *same* domain drawn uniformly.

A cold-start user's factors are learned from their auxiliary interactions only, and used as they
are in the target domain. No pretraining: RecBole's own training loop over all training
interactions (a held-out user's target interactions are not among them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.utils import InputType, ModelType

from recbole_music.config import by_feedback, setting
from recbole_music.model.target_domain_base import TargetDomainRecommender


class CMF(TargetDomainRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.GENERAL

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.predicts_ratings = self.explicit
        dim = int(config["embedding_size"])
        self.num_negatives = int(setting(config, "num_negatives"))
        reg = by_feedback(setting(config, "factor_reg_weight"), self.explicit, "factor_reg_weight")
        self.reg_weight = float(reg)
        self.aux_weight = float(setting(config, "aux_weight"))
        self._add_biased_factors(dim, float(setting(config, "init_std")))
        self._register_domain_mean(dataset)  # [aux, target]
        feat = dataset.inter_feat
        is_target = feat[dataset.domain_field] == dataset.target_domain_id
        self.register_buffer("target_items", torch.nonzero(dataset.target_item_mask).flatten())
        self.register_buffer("aux_items", torch.unique(feat[dataset.iid_field][~is_target]))

    def _score(self, users, items, is_target):
        score = (self.user_factors(users) * self.item_factors(items)).sum(-1)
        score = score + self.item_bias(items).squeeze(-1)
        if self.explicit:
            score = score + self.user_bias(users).squeeze(-1)
            score = score + torch.where(is_target, self.domain_mean[1], self.domain_mean[0])
        return score

    def calculate_loss(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        is_target = self.target_rows(interaction)
        weight = torch.where(is_target, 1.0, self.aux_weight).float()
        if self.explicit:
            error = (self._score(users, items, is_target) - interaction[self.RATING].float()) ** 2
            loss = (weight * error).sum() / weight.sum().clamp_min(1e-12)
        else:
            k = self.num_negatives
            neg_target = is_target.repeat_interleave(k)
            pick_t = torch.randint(len(self.target_items), neg_target.shape, device=users.device)
            pick_a = torch.randint(len(self.aux_items), neg_target.shape, device=users.device)
            negatives = torch.where(neg_target, self.target_items[pick_t], self.aux_items[pick_a])
            logits = torch.cat(
                [
                    self._score(users, items, is_target),
                    self._score(users.repeat_interleave(k), negatives, neg_target),
                ]
            )
            labels = torch.cat([torch.ones(len(users)), torch.zeros(len(negatives))]).to(logits)
            weights = torch.cat([weight, weight.repeat_interleave(k)])
            loss = F.binary_cross_entropy_with_logits(
                logits, labels, weight=weights, reduction="sum"
            )
            loss = loss / weights.sum().clamp_min(1e-12)
        l2 = self.user_factors(users).pow(2).sum(-1) + self.item_factors(items).pow(2).sum(-1)
        return loss + self.reg_weight * l2.mean()

    def predict(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        return self._score(users, items, torch.ones_like(users, dtype=torch.bool))

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID]
        scores = self.user_factors(users) @ self.item_factors.weight.T
        scores = scores + self.item_bias.weight.view(1, -1)
        if self.explicit:
            scores = scores + self.domain_mean[1] + self.user_bias(users)
        return scores.view(-1)
