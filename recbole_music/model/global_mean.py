"""GlobalMean: every prediction is the mean target-domain training rating. The lowest floor."""

from __future__ import annotations

import torch
from recbole.utils import InputType, ModelType

from recbole_music.model.target_domain_base import TargetDomainRecommender


class GlobalMean(TargetDomainRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL  # nothing to fit by gradient: one pass, like RecBole's Pop
    ranks_items = False  # one score for every item: no ranking metric would mean anything

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        if not self.explicit:
            raise ValueError(
                "GlobalMean predicts the mean rating, but this dataset has no ratings "
                "(implicit feedback); use ItemMean (popularity) as the floor instead"
            )
        self.predicts_ratings = True
        _, _, ratings = self.target_training_stats(dataset)
        mean = ratings.mean().item() if ratings is not None and len(ratings) else 0.0
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float))
        self.fake_loss = torch.nn.Parameter(torch.zeros(1))
        self.other_parameter_name = ["mean"]

    def calculate_loss(self, interaction):
        return self.fake_loss

    def predict(self, interaction):
        return self.mean.expand(len(interaction[self.USER_ID])).clone()

    def full_sort_predict(self, interaction):
        n_users = len(interaction[self.USER_ID])
        return self.mean.expand(n_users * self.n_items).clone()
