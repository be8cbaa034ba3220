"""LLM-EMF's attention blocks: a causal self-attention encoder per sequence (target, auxiliary,
merged) and a cross-domain attention from one domain's state over the other domain's sequence.

Padding is masked from the sequence LENGTHS, never from the ids in the padded slots, and an empty
sequence (a user with no item of that domain yet) gets a learned state instead of an average over
padding. The cross-domain attention always sees one learned "null" key, so it is defined (no NaN)
when the other domain's sequence is empty.
"""

from __future__ import annotations

import torch
from recbole.model.layers import TransformerEncoder
from torch import nn


def causal_padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Additive mask [B, 1, L, L]: position q sees k <= q with k < length (RecBole's -10000)."""
    pos = torch.arange(max_len, device=lengths.device)
    key_ok = pos.view(1, 1, max_len) < lengths.view(-1, 1, 1)  # [B, 1, L]
    causal = pos.view(max_len, 1) >= pos.view(1, max_len)  # [L, L]
    allowed = (key_ok & causal.unsqueeze(0)).unsqueeze(1)
    return torch.where(allowed, 0.0, -10000.0)


class SequenceEncoder(nn.Module):
    """SASRec-style: item vectors + position (+ domain) embedding → causal Transformer.

    ``forward`` returns (states [B, L, d], last state [B, d]); the last state of an empty
    sequence is the learned ``empty_state``.
    """

    def __init__(
        self,
        max_len,
        dim,
        n_layers,
        n_heads,
        inner_size,
        hidden_dropout,
        attn_dropout,
        hidden_act,
        layer_norm_eps,
        with_domain=False,
    ):
        super().__init__()
        self.position_embedding = nn.Embedding(max_len, dim)
        self.domain_embedding = nn.Embedding(2, dim) if with_domain else None
        self.layer_norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(hidden_dropout)
        self.encoder = TransformerEncoder(
            n_layers=n_layers,
            n_heads=n_heads,
            hidden_size=dim,
            inner_size=inner_size,
            hidden_dropout_prob=hidden_dropout,
            attn_dropout_prob=attn_dropout,
            hidden_act=hidden_act,
            layer_norm_eps=layer_norm_eps,
        )
        self.empty_state = nn.Parameter(torch.zeros(dim))

    def forward(self, item_vectors, lengths, domains=None):
        batch, max_len, _ = item_vectors.shape
        pos = torch.arange(max_len, device=item_vectors.device)
        x = item_vectors + self.position_embedding(pos).unsqueeze(0)
        if self.domain_embedding is not None:
            x = x + self.domain_embedding(domains)
        x = self.dropout(self.layer_norm(x))
        states = self.encoder(
            x, causal_padding_mask(lengths, max_len), output_all_encoded_layers=False
        )[-1]
        index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
        last = states.gather(1, index).squeeze(1)
        last = torch.where((lengths > 0).view(-1, 1), last, self.empty_state.expand_as(last))
        return states, last


class CrossDomainAttention(nn.Module):
    """One domain's state (the query) attends over the other domain's sequence states."""

    def __init__(self, dim, n_heads, inner_size, hidden_dropout, attn_dropout, layer_norm_eps):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, n_heads, dropout=attn_dropout, batch_first=True)
        self.null_key = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, inner_size),
            nn.GELU(),
            nn.Dropout(hidden_dropout),
            nn.Linear(inner_size, dim),
        )
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(hidden_dropout)

    def forward(self, query, keys, key_lengths):
        batch, max_len, dim = keys.shape
        keys = torch.cat([self.null_key.expand(batch, 1, dim), keys], dim=1)
        pos = torch.arange(max_len, device=keys.device)
        ignore = torch.cat(
            [
                torch.zeros(batch, 1, dtype=torch.bool, device=keys.device),
                pos.view(1, -1) >= key_lengths.view(-1, 1),
            ],
            dim=1,
        )
        out, _ = self.attention(
            query.unsqueeze(1), keys, keys, key_padding_mask=ignore, need_weights=False
        )
        h = self.norm1(query + self.dropout(out.squeeze(1)))
        return self.norm2(h + self.dropout(self.feed_forward(h)))
