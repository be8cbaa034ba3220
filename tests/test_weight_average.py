"""MuSiC's weight average matches torch's AveragedModel step for step, without copying buffers."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from recbole_music.trainer.weight_average import WeightAverage

torch.set_num_threads(1)


class _WithBigBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 3)
        self.register_buffer("frozen_vectors", torch.randn(50, 4))


def test_weight_average_equals_averaged_model_and_keeps_no_buffer_copy():
    torch.manual_seed(0)
    model = _WithBigBuffer()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ours = WeightAverage(model, decay=0.9)
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    for _ in range(5):
        optimizer.zero_grad()
        model.layer(model.frozen_vectors).pow(2).mean().backward()
        optimizer.step()
        ours.update()
        reference.update_parameters(model)
    for mine, theirs, live in zip(ours.average, reference.module.parameters(), model.parameters()):
        assert torch.equal(mine, theirs)
        assert not torch.equal(mine, live)  # an average, not the last step
    # the parameters' 15 numbers, not the buffer's 200
    assert sum(a.numel() for a in ours.average) == 15
