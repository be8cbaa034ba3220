"""LACDR (Wang et al., "Low-dimensional Alignment for Cross-Domain Recommendation", CIKM 2021).

An autoencoder per domain over the base MF user vectors (:mod:`base_mf`), whose low-dimensional
codes (``latent_dim``) are aligned across domains:

* reconstruction, source: every user with auxiliary interactions (overlapping — held-out ones
  included, their auxiliary data is training data — and auxiliary-only users);
* reconstruction, target: every user whose target interactions are in training (side and
  training-overlap users);
* alignment ``alignment_weight · ||E_S(u_S) - E_T(u_T)||^2`` on the overlapping training users.

Non-overlapping users thus train the autoencoders without supervision; a cold-start user's target
vector is ``D_T(E_S(u_S))``. Encoders and decoders are linear (with a bias — the user vectors
hold the user bias, whose mean is not 0 — our choice; the paper leaves the layers open). Losses
are mean squared errors. The stage iterates over users: one row per user of either domain.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import nn

from recbole_music.model.baselines.mapping_base import MappingRecommender


class LACDR(MappingRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        latent = int(config["latent_dim"])
        self.alignment_weight = float(config["alignment_weight"])
        self.encoder_source = nn.Linear(self.vec_dim, latent)
        self.decoder_source = nn.Linear(latent, self.vec_dim)
        self.encoder_target = nn.Linear(self.vec_dim, latent)
        self.decoder_target = nn.Linear(latent, self.vec_dim)

    def stage_rows(self, dataset):
        """One training row per user who has a source vector or a trained target vector."""
        users = dataset.inter_feat[dataset.uid_field]
        wanted = (self.has_source | self.has_target).cpu()[users].numpy()
        return self.first_row_per_user(dataset, np.flatnonzero(wanted))

    def map_users(self, users):
        return self.decoder_target(self.encoder_source(self.src_user[users]))

    def mapping_loss(self, interaction):
        users = interaction[self.USER_ID].unique()
        loss = self.src_user.new_zeros(())
        source = users[self.has_source[users]]
        if len(source):
            u_s = self.src_user[source]
            loss = loss + F.mse_loss(self.decoder_source(self.encoder_source(u_s)), u_s)
        target = users[self.has_target[users]]
        if len(target):
            u_t = self.target_vectors_for_training(target)
            loss = loss + F.mse_loss(self.decoder_target(self.encoder_target(u_t)), u_t)
        both = users[self.is_train_overlap[users]]
        if len(both):
            code_s = self.encoder_source(self.src_user[both])
            code_t = self.encoder_target(self.target_vectors_for_training(both))
            loss = loss + self.alignment_weight * F.mse_loss(code_s, code_t)
        return loss
