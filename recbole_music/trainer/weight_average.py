"""An exponential moving average of a model's parameters (MuSiC's ``ema_decay``).

``torch.optim.swa_utils.AveragedModel`` keeps a deep copy of the whole module and copies every
buffer into it after every step. MuSiC's buffers hold the frozen item and user vectors (the
largest tensors of the model), so that copy cost more than the average itself and doubled the
vectors' memory. This keeps the parameters only; buffers are never averaged (nor were they
there), so the result is the same, step for step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn


class WeightAverage:
    """``average = decay * average + (1 - decay) * weights`` after every :meth:`update`; the
    first update copies the weights (as ``AveragedModel`` does)."""

    def __init__(self, model: nn.Module, decay: float):
        self.parameters = list(model.parameters())
        self.average = [p.detach().clone() for p in self.parameters]
        self.updates = 0
        self._update = get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update(self) -> None:
        current = [p.detach() for p in self.parameters]
        if self.updates == 0:
            torch._foreach_copy_(self.average, current)
        else:
            self._update(self.average, current, self.updates)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"average": list(self.average), "updates": self.updates}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        torch._foreach_copy_(self.average, state["average"])
        self.updates = state["updates"]
