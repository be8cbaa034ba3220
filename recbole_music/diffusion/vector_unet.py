"""The vectorized U-Net (MuSiC paper §3.3.3): a U-Net of MLP blocks over d-dim feature vectors.

A plain ``nn.Module`` called as ``net(x_t, t, cond)``; it knows nothing about the diffusion
schedule (see ``gaussian_diffusion``), it just maps a noised vector, its 0-based step and an
optional condition to a vector shaped like the input (x̂_0 or ε̂, whichever the process trains).

Layout, for ``dim = d`` and ``hidden_dims = (h1, h2, ...)``::

    t ──sinusoidal(time_dim)──MLP──▶ emb ◀──(+)── MLP(c)          (c term only when cond given)
    x (+ c, projected to d when cond_dim != d)                    (the paper: "added to the input")
      ├─ down1: d  → h1 ──────────────────────────────┐ skip
      │    ├─ down2: h1 → h2 ────────────────┐ skip   │
      │    │    mid: h2 → h2                 │        │
      │    ├─ up2:  [mid, skip2] 2·h2 → h1 ◀─┘        │
      ├─ up1:  [up2, skip1] 2·h1 → d ◀────────────────┘
    out: linear d → d

- Every block is a residual MLP block: ``LayerNorm → act → Linear → (+ emb projection) →
  LayerNorm → act → dropout → Linear``, plus a linear shortcut when the width changes. The
  embedding (time, plus condition when given) is injected in every block.
- Skip connections are **concatenated** (as in the original U-Net), so each up block sees the
  decoder state and the matching encoder state side by side and learns how to mix them.
- Works for any ``dim`` (odd too), any number of levels (``hidden_dims=()`` leaves one middle
  block at width ``dim``), a batch of 1, and ``cond=None`` (MuSiC's side users).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "ResidualMLPBlock", "VectorUNet", "timestep_embedding"]

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def _activation(name: str) -> nn.Module:
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[key]()


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[B, dim]`` of (0-based) steps ``t`` ``[B]``: [cos | sin] halves.

    Frequencies ``max_period^(-i / (half - 1))``, ``i < half = dim // 2``; an odd ``dim`` gets a
    trailing zero column.
    """
    half = dim // 2
    denom = max(half - 1, 1)
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / denom
    )
    args = t.float().reshape(-1, 1) * freqs.reshape(1, -1)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class ResidualMLPBlock(nn.Module):
    """``in_dim → out_dim`` residual MLP block with an embedding added after the first linear."""

    def __init__(self, in_dim: int, out_dim: int, emb_dim: int, dropout: float, activation: str):
        super().__init__()
        self.norm1 = nn.LayerNorm(in_dim)
        self.act1 = _activation(activation)
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.emb_proj = nn.Sequential(_activation(activation), nn.Linear(emb_dim, out_dim))
        self.norm2 = nn.LayerNorm(out_dim)
        self.act2 = _activation(activation)
        # no module at all without dropout: a zero-rate Dropout is still a call per block and step
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc2 = nn.Linear(out_dim, out_dim)
        self.shortcut = nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.fc1(self.act1(self.norm1(x)))
        h = h + self.emb_proj(emb)
        h = self.fc2(self.dropout(self.act2(self.norm2(h))))
        return h + self.shortcut(x)


class VectorUNet(nn.Module):
    """Denoiser ``forward(x [B, dim], t [B], cond [B, cond_dim] | None) -> [B, dim]``.

    ``cond_dim``: the condition's width; ``None`` means ``dim`` (then the condition is added to
    the input as is; otherwise a linear layer projects it to ``dim`` first).
    """

    def __init__(
        self,
        dim: int,
        hidden_dims: Sequence[int] = (64, 32),
        time_dim: int = 32,
        cond_dim: int | None = None,
        dropout: float = 0.0,
        activation: str = "silu",
    ):
        super().__init__()
        hidden_dims = tuple(int(h) for h in hidden_dims)
        if int(dim) < 1 or any(h < 1 for h in hidden_dims):
            raise ValueError(f"dim and hidden_dims must be >= 1, got {dim} and {hidden_dims}")
        if int(time_dim) < 2:
            raise ValueError(f"time_dim must be >= 2, got {time_dim}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        _activation(activation)  # validate early
        self.dim = int(dim)
        self.hidden_dims = hidden_dims
        self.time_dim = int(time_dim)
        self.cond_dim = self.dim if cond_dim is None else int(cond_dim)
        self.activation = str(activation).lower()
        emb_dim = self.time_dim

        self.time_mlp = nn.Sequential(
            nn.Linear(self.time_dim, emb_dim), _activation(activation), nn.Linear(emb_dim, emb_dim)
        )
        # the condition: projected to dim (when needed) and added to the input; also embedded
        # and added to the time embedding so every block sees it
        self.cond_proj = (
            nn.Identity() if self.cond_dim == self.dim else nn.Linear(self.cond_dim, self.dim)
        )
        self.cond_mlp = nn.Sequential(
            nn.Linear(self.cond_dim, emb_dim), _activation(activation), nn.Linear(emb_dim, emb_dim)
        )

        widths = (self.dim, *hidden_dims)
        block = lambda i, o: ResidualMLPBlock(i, o, emb_dim, dropout, activation)  # noqa: E731
        self.down = nn.ModuleList(block(widths[i], widths[i + 1]) for i in range(len(hidden_dims)))
        self.mid = block(widths[-1], widths[-1])
        # up[i] undoes down[i]: input = [decoder state, skip from down[i]] (both widths[i+1])
        self.up = nn.ModuleList(
            block(2 * widths[i + 1], widths[i]) for i in range(len(hidden_dims))
        )
        self.out = nn.Linear(self.dim, self.dim)

    def forward(self, x: torch.Tensor, t, cond: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be [batch, {self.dim}], got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.time_dim).to(x.dtype))
        h = x
        if cond is not None:
            if cond.shape != (x.shape[0], self.cond_dim):
                raise ValueError(
                    f"cond must be [{x.shape[0]}, {self.cond_dim}], got {tuple(cond.shape)}"
                )
            h = h + self.cond_proj(cond)
            emb = emb + self.cond_mlp(cond)
        skips = []
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        h = self.mid(h, emb)
        for block, skip in zip(reversed(self.up), reversed(skips)):
            h = block(torch.cat([h, skip], dim=-1), emb)
        return self.out(h)
