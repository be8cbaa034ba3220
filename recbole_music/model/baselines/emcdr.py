"""EMCDR (Man et al., "Cross-Domain Recommendation: An Embedding and Mapping Approach", IJCAI 2017).

1. Latent factors of each domain (the paper: MF or BPR; here the shared base MF, :mod:`base_mf`).
2. A mapping ``f`` from the source to the target latent space, trained on the overlapping
   (training) users: ``min ||f(u_S) - u_T||^2`` — ``mapping: mlp`` (one tanh hidden layer of
   ``mlp_hidden_size`` units, the paper's better variant) or ``mapping: linear`` (the linear map
   of the paper and of PTUPCDR's code).
3. A cold-start user's target vector is ``f(u_S)``; ratings / scores follow the target MF.

The mapping stage iterates over users (one row per training-overlap user), as in the paper.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from recbole_music.config import setting
from recbole_music.model.baselines.mapping_base import MappingRecommender


def mapping_network(kind: str, width: int, hidden: int) -> nn.Module:
    """The map of EMCDR and SSCDR: ``linear`` (no bias) or ``mlp`` (width → hidden → width)."""
    kind = str(kind).lower()
    if kind == "linear":
        return nn.Linear(width, width, bias=False)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, width))
    raise ValueError(f"mapping must be 'linear' or 'mlp', got {kind!r}")


class EMCDR(MappingRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        hidden = setting(config, "mlp_hidden_size")
        hidden = 2 * self.vec_dim if hidden is None else int(hidden)  # ~ = 2 x the vector size
        self.mapping = mapping_network(setting(config, "mapping"), self.vec_dim, hidden)

    def map_users(self, users):
        return self.mapping(self.src_user[users])

    def mapping_loss(self, interaction):
        users = interaction[self.USER_ID].unique()
        return F.mse_loss(self.map_users(users), self.target_vectors_for_training(users))
