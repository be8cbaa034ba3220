"""PTUPCDR (Zhu et al., "Personalized Transfer of User Preferences for Cross-domain
Recommendation", WSDM 2022).

On the shared base MF (:mod:`base_mf`):

* **characteristic encoder** — the user's source-domain items ``v_j`` (their "positive" history:
  items rated ``>= positive_min_rating`` on ratings, as the paper's code keeps ratings > 3; all
  items when the user has none, and on implicit data), at most ``max_history_len`` of them,
  aggregated with attention ``a_j = softmax_j(h(v_j))``, ``h`` = Linear–ReLU–Linear → ``p_u``;
* **meta network** — ``g(p_u)`` (Linear–ReLU–Linear, hidden ``meta_dim``) → a personalised bridge
  ``W_u`` (D × D);
* the user's target vector is ``u_S W_u``.

Training is *task-oriented*: the MSE of ``offset_i + <u_S W_u, v_i>`` on the target ratings of
overlapping training users (BCE against sampled target items on implicit data), with the
target item vectors frozen — not the distance to ``u_T`` — so the stage iterates over their target
interactions.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_music.config import setting
from recbole_music.model.baselines.mapping_base import MappingRecommender, aux_history


class PTUPCDR(MappingRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        width = self.vec_dim
        meta_dim = int(config["meta_dim"])
        items, mask = aux_history(
            dataset, config["positive_min_rating"], int(setting(config, "max_history_len"))
        )
        self.register_buffer("history_items", items)
        self.register_buffer("history_mask", mask)
        self.event_k = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1, bias=False)
        )
        self.decoder = nn.Sequential(
            nn.Linear(width, meta_dim), nn.ReLU(), nn.Linear(meta_dim, width * width)
        )

    def stage_rows(self, dataset):
        return self.training_overlap_target_rows(dataset)

    def bridges(self, users):
        """[B, D, D]: each user's personalised bridge from their source-item history."""
        items, mask = self.history_items[users], self.history_mask[users]
        features = self.src_item[items]  # [B, L, D]
        logits = self.event_k(features).squeeze(-1).masked_fill(~mask, float("-inf"))
        attention = torch.softmax(logits, dim=1)
        attention = torch.nan_to_num(attention, nan=0.0)  # a user without history: p_u = 0
        characteristic = (attention.unsqueeze(-1) * features).sum(1)
        return self.decoder(characteristic).view(-1, self.vec_dim, self.vec_dim)

    def map_users(self, users):
        return torch.bmm(self.src_user[users].unsqueeze(1), self.bridges(users)).squeeze(1)

    def mapping_loss(self, interaction):
        target = self.target_rows(interaction)
        users, items = interaction[self.USER_ID][target], interaction[self.ITEM_ID][target]
        if len(users) == 0:
            return self.decoder[0].weight.sum() * 0.0
        if not self.is_train_overlap[users].all():
            raise RuntimeError("PTUPCDR: the bridge trains on overlapping training users only")
        ratings = interaction[self.RATING][target] if self.explicit else None
        return self.target_task_loss(self.map_users(users), items, ratings)
