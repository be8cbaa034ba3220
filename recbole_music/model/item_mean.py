"""ItemMean: each target item's damped mean training rating (its popularity on implicit data).

With ratings: ``(sum of the item's ratings + damping * global mean) / (count + damping)`` — the
damping (config ``damping``) keeps an item with one 5-star rating from topping every list.
Without ratings the score is the item's number of target-domain training interactions.
"""

from __future__ import annotations

import torch
from recbole.utils import InputType, ModelType

from recbole_music.model.target_domain_base import TargetDomainRecommender


class ItemMean(TargetDomainRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.predicts_ratings = self.explicit
        _, items, ratings = self.target_training_stats(dataset)
        counts = torch.bincount(items, minlength=self.n_items).double()
        if ratings is None:
            scores = counts
        else:
            damping = float(config["damping"] if config["damping"] is not None else 0.0)
            mean = ratings.mean() if len(ratings) else torch.tensor(0.0, dtype=torch.double)
            sums = torch.zeros(self.n_items, dtype=torch.double).index_add_(0, items, ratings)
            with torch.no_grad():
                scores = torch.where(
                    counts + damping > 0, (sums + damping * mean) / (counts + damping), mean
                )
        self.register_buffer("item_score", scores.float())
        self.fake_loss = torch.nn.Parameter(torch.zeros(1))
        self.other_parameter_name = ["item_score"]

    def calculate_loss(self, interaction):
        return self.fake_loss

    def predict(self, interaction):
        return self.item_score[interaction[self.ITEM_ID]]

    def full_sort_predict(self, interaction):
        n_users = len(interaction[self.USER_ID])
        return self.item_score.repeat(n_users)
