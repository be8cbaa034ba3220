"""What every model of the plugin knows about the two domains of its dataset."""

from __future__ import annotations

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from torch import nn


class TargetDomainRecommender(GeneralRecommender):
    """A RecBole general recommender that trains on and scores the target domain.

    ``predicts_ratings`` tells the evaluator whether ``predict`` returns star ratings (then MAE
    and RMSE are reported) or only ranking scores.
    """

    predicts_ratings = False

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.DOMAIN = dataset.domain_field
        self.target_domain_id = dataset.target_domain_id
        self.explicit = dataset.is_explicit
        self.RATING = dataset.rating_field if self.explicit else None
        self.register_buffer("target_item_mask", dataset.target_item_mask.clone())

    def _add_biased_factors(self, dim: int, init_std: float) -> None:
        """User/item factors (normal, std ``init_std``) and user/item biases (zero): an MF."""
        self.user_factors = nn.Embedding(self.n_users, dim)
        self.item_factors = nn.Embedding(self.n_items, dim)
        self.user_bias = nn.Embedding(self.n_users, 1)
        self.item_bias = nn.Embedding(self.n_items, 1)
        for emb in (self.user_factors, self.item_factors):
            nn.init.normal_(emb.weight, std=init_std)
        for emb in (self.user_bias, self.item_bias):
            nn.init.zeros_(emb.weight)

    def _register_domain_mean(self, dataset) -> None:
        """Buffer ``domain_mean`` = [aux, target] mean training rating (zeros on implicit data)."""
        feat = dataset.inter_feat
        is_target = feat[dataset.domain_field] == dataset.target_domain_id
        means = torch.zeros(2)
        if self.explicit:
            ratings = feat[dataset.rating_field].float()
            means = torch.stack([ratings[~is_target].mean(), ratings[is_target].mean()])
        self.register_buffer("domain_mean", torch.nan_to_num(means))

    def _register_domain_items(self, dataset) -> None:
        """Buffers ``domain_items_0`` (auxiliary items seen in training) and ``domain_items_1``
        (every target item): the pools a model draws each domain's negatives from."""
        feat = dataset.inter_feat
        is_target = feat[dataset.domain_field] == dataset.target_domain_id
        self.register_buffer("domain_items_0", torch.unique(feat[dataset.iid_field][~is_target]))
        self.register_buffer("domain_items_1", torch.nonzero(dataset.target_item_mask).flatten())

    def target_rows(self, interaction) -> torch.Tensor:
        """Boolean mask of the batch rows that are target-domain interactions."""
        return interaction[self.DOMAIN] == self.target_domain_id

    @staticmethod
    def target_training_stats(dataset):
        """(user ids, item ids, ratings or None) of the target-domain training interactions."""
        feat = dataset.inter_feat
        rows = feat[dataset.domain_field] == dataset.target_domain_id
        ratings = feat[dataset.rating_field][rows].double() if dataset.is_explicit else None
        return feat[dataset.uid_field][rows], feat[dataset.iid_field][rows], ratings
