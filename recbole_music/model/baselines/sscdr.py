"""SSCDR (Kang et al., "Semi-Supervised Learning for Cross-Domain Recommendation to Cold-Start
Users", CIKM 2019).

The mapping ``f`` (an MLP, as EMCDR's) is trained *semi-supervised*:

* supervised, on the overlapping training users (the labelled data): ``||f(u_S) - u_T||^2``;
* unsupervised, on the source-domain interactions of **all** users and all source items (the
  unlabelled data): the mapping must keep the source domain's user–item relations — a user's
  mapped vector must rate the mapped vector of an item the user interacted with (rated
  ``>= positive_min_rating`` on ratings) above that of a random source item:
  ``-log sigma(<f(u_S), f(v_i)> - <f(u_S), f(v_j)>)``, weighted by ``unsup_weight`` (λ).

What we simplified, and why:

* The paper learns both domains' spaces with metric learning (CML), where a relation is a
  Euclidean distance, and its unsupervised loss is a triplet hinge on distances. Our baselines
  share one base MF (:mod:`base_mf`), where a relation is an inner product; so the same relation-
  preserving loss is written on inner products (a BPR term) instead of on distances.
* The paper's multi-hop *neighbourhood inference* (averaging the mapped vectors of the user's
  source items into the cold user's vector) relies on users sitting near their items in a metric
  space; in an inner-product space the mean of a user's item vectors is no estimate of the user's
  vector, so a cold-start user's target vector is ``f(u_S)`` as in EMCDR.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from recbole_music.config import setting
from recbole_music.model.baselines.emcdr import mapping_network
from recbole_music.model.baselines.mapping_base import MappingRecommender


class SSCDR(MappingRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        hidden = setting(config, "mlp_hidden_size")
        hidden = 2 * self.vec_dim if hidden is None else int(hidden)  # ~ = 2 x the vector size
        self.mapping = mapping_network(setting(config, "mapping"), self.vec_dim, hidden)
        self.unsup_weight = float(config["unsup_weight"])
        self.positive_min_rating = config["positive_min_rating"]

    def stage_rows(self, dataset):
        """One target row per training-overlap user (supervised) + the positive source
        interactions of all users (unsupervised)."""
        supervised = super().stage_rows(dataset)
        feat = dataset.inter_feat
        aux = (feat[dataset.domain_field] != dataset.target_domain_id).numpy()
        if dataset.is_explicit and self.positive_min_rating is not None:
            aux &= feat[dataset.rating_field].numpy() >= float(self.positive_min_rating)
        return np.sort(np.concatenate([supervised, np.flatnonzero(aux)]))

    def map_users(self, users):
        return self.mapping(self.src_user[users])

    def mapping_loss(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        target = self.target_rows(interaction)
        loss = self.src_item.new_zeros(())
        if target.any():
            labelled = users[target].unique()
            if not self.is_train_overlap[labelled].all():
                raise RuntimeError("SSCDR: supervised rows must be overlapping training users")
            loss = loss + F.mse_loss(
                self.map_users(labelled), self.target_vectors_for_training(labelled)
            )
        aux = ~target
        if aux.any() and self.unsup_weight > 0:
            a_users, positives = users[aux], items[aux]
            pick = torch.randint(len(self.aux_items), (len(a_users),), device=users.device)
            negatives = self.aux_items[pick]
            mapped_user = self.map_users(a_users)
            gap = (
                mapped_user
                * (self.mapping(self.src_item[positives]) - self.mapping(self.src_item[negatives]))
            ).sum(-1)
            loss = loss + self.unsup_weight * F.softplus(-gap).mean()
        return loss
