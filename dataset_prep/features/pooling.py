"""Token pooling of hidden states into one vector per text.

* ``first-last-avg`` (the paper's, after Li et al. 2020): the mean over non-padding tokens of
  ``(H_first + H_last) / 2``. "First" is ``hidden_states[1]``, the output of the first
  transformer layer, not ``hidden_states[0]``: index 0 is the embedding-layer output (token
  embeddings, plus positions for BERT-type models) — context-free, the same vector for a word
  wherever it stands — while the paper speaks of the first and last *hidden layers*. The index
  is a setting (``first_layer``) for whoever wants the embedding-output variant.
* ``mean`` — the mean over non-padding tokens of the last hidden layer (what sentence-
  transformers does for all-MiniLM-L6-v2).
* ``pooler`` — the model's own pooled output (BERT's tanh(CLS) head, CLIP's projected
  embeddings); an error for models that have none.

All three are computed in float32 whatever the model's dtype.
"""

from __future__ import annotations

import torch

POOLINGS = ("first-last-avg", "mean", "pooler")


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the tokens where ``mask`` is 1. hidden [B, T, D], mask [B, T] → [B, D]."""
    m = mask.to(torch.float32).unsqueeze(-1)
    return (hidden.to(torch.float32) * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def pool(
    method: str,
    hidden_states,
    mask: torch.Tensor,
    pooler_output: torch.Tensor | None = None,
    first_layer: int = 1,
) -> torch.Tensor:
    if method == "first-last-avg":
        if len(hidden_states) < 2:
            raise ValueError("first-last-avg needs the hidden states of every layer")
        first = hidden_states[first_layer].to(torch.float32)
        last = hidden_states[-1].to(torch.float32)
        return masked_mean((first + last) / 2.0, mask)
    if method == "mean":
        return masked_mean(hidden_states[-1], mask)
    if method == "pooler":
        if pooler_output is None:
            raise ValueError(
                "this model has no pooler output; use --pooling mean or first-last-avg"
            )
        return pooler_output.to(torch.float32)
    raise ValueError(f"unknown pooling {method!r}; one of {', '.join(POOLINGS)}")
