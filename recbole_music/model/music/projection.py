"""The small MLP that projects a frozen LLM vector to a d-dim feature (MuSiC §3.2)."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "tanh": nn.Tanh,  # the paper's choice: keeps signs, bounded (stable for diffusion)
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "softmax": lambda: nn.Softmax(dim=-1),
    "identity": nn.Identity,
}


def activation_layer(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(
            f"unknown activation '{name}'; choose from {sorted(ACTIVATIONS)}"
        ) from None


class ProjectionMLP(nn.Module):
    """``in_dim -> hidden -> out_dim`` with the activation after both layers and dropout between."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float, activation: str):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            activation_layer(activation),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
            activation_layer(activation),
        )

    def first_layer(self, x: torch.Tensor) -> torch.Tensor:
        """The activation of the first layer: the costly part (an LLM vector is 384-4,096 wide),
        and deterministic, so a training step can share it between loss terms."""
        return self.net[1](self.net[0](x))

    def rest(self, hidden: torch.Tensor) -> torch.Tensor:
        """Dropout, the second layer and its activation, over :meth:`first_layer`'s output."""
        return self.net[4](self.net[3](self.net[2](hidden)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.first_layer(x))
