"""Several models trained on one split, scored as one (``size_search_average``).

A full ranking averages the members' scores after putting each member's scores of a user on one
scale (minus the user's mean over the target items, divided by their standard deviation), so a
member whose scores spread wider does not outvote the others; predicted ratings (explicit data)
are averaged as they are, since they share the rating scale. Everything the evaluator asks of a
model besides the scores (ratings or click scores, the scoring of unseen items) is the first
member's: the members differ in sizes only, not in what they model.
"""

from __future__ import annotations

import torch


def standardised(scores: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``scores`` [users, items] minus each row's mean over ``columns`` (a mask), divided by the
    row's standard deviation there (1 where it is 0)."""
    inside = scores[:, columns]
    mean = inside.mean(dim=1, keepdim=True)
    std = inside.std(dim=1, keepdim=True, unbiased=False)
    return (scores - mean) / torch.where(std > 0, std, torch.ones_like(std))


class ScoreAverage(torch.nn.Module):
    def __init__(self, members: list, target_item_mask: torch.Tensor):
        super().__init__()
        if not members:
            raise ValueError("a score average needs at least one member")
        self.members = torch.nn.ModuleList(members)
        self.register_buffer("target_item_mask", target_item_mask.bool().clone(), persistent=False)
        first = members[0]
        self.USER_ID, self.ITEM_ID = first.USER_ID, first.ITEM_ID
        self.predicts_ratings = bool(getattr(first, "predicts_ratings", False))
        self.ranks_items = bool(getattr(first, "ranks_items", True))
        self.unseen_item_scoring = getattr(first, "unseen_item_scoring", None)

    def predict(self, interaction) -> torch.Tensor:
        return torch.stack([m.predict(interaction).float() for m in self.members]).mean(dim=0)

    def full_sort_predict(self, interaction) -> torch.Tensor:
        users = len(interaction[self.USER_ID])
        total = None
        for member in self.members:
            scores = member.full_sort_predict(interaction).float().view(users, -1)
            scores = standardised(scores, self.target_item_mask.to(scores.device))
            total = scores if total is None else total + scores
        return (total / len(self.members)).view(-1)
