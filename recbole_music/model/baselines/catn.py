"""CATN (Zhao et al., "CATN: Cross-Domain Recommendation for Cold-Start Users via Aspect Transfer
Network", SIGIR 2020), written from the paper's description; docs/baselines.md says what we
simplified.

Reviews say which *aspects* of an item a user cares about. CATN reads them from review documents
(:mod:`recbole_music.data.review_documents`) and learns how aspects of one domain correlate with
aspects of the other:

1. **Aspect extraction.** A document's word vectors go through a convolution (ReLU); for each of
   ``M`` aspects a gated projection ``σ(W_g c_t) ⊙ (W_p c_t)`` of every position is pooled by an
   attention whose query is that aspect's vector of the document's domain: ``M`` aspect vectors
   of size ``k`` per document. Users, items and (with a second convolution) the user's
   *auxiliary* document — reviews of like-minded users on the user's items — each have one.
2. **Auxiliary fusion.** ``g = σ(W [A − U; A ⊙ U])``, ``U' = tanh(W' [g ⊙ A; U])``: the
   auxiliary aspects fill in what a user's own short review history leaves out.
3. **Cross-domain aspect correlation.** A ``k × k`` matrix ``Mc`` relates the domains
   (``Mc`` from auxiliary to target, ``Mcᵀ`` back): interactions ``S = (U' Mc) Iᵀ`` (``M × M``)
   are weighted by the global aspect correlation ``LeakyReLU(V_u Mc V_iᵀ)`` of the two domains'
   aspect vectors, and averaged: ``r = mean(S ⊙ S_att) + b_u + b_i`` (+ the domain's mean).

Training: the training overlap users' ratings of both domains. A target-domain rating is
predicted from the user's *auxiliary-domain* documents and the target item's (the direction a
cold-start user needs); an auxiliary-domain rating from the user's target-domain documents and
the auxiliary item's, with the other direction's extractors. Squared error on explicit data;
on implicit data each interaction against ``num_negatives`` items of its domain (BCE). A
cold-start user is scored from their auxiliary-domain documents alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.utils import InputType, ModelType
from torch import nn

from recbole_music.config import setting
from recbole_music.data.dataset import SplitPart, UserRole
from recbole_music.data.review_documents import build_documents
from recbole_music.model.baselines.review_words import ReviewWords
from recbole_music.model.target_domain_base import TargetDomainRecommender

AUX, TARGET = 0, 1


class AspectExtractor(nn.Module):
    """Documents [B, T, w] → ``aspects`` aspect vectors [B, M, k] (CATN §3.2)."""

    def __init__(self, word_dim, filters, window, aspects, dim, dropout, shared_conv=None):
        super().__init__()
        self.aspects, self.dim = aspects, dim
        # the auxiliary document's extractor reads through the user's convolution, then its own
        self.conv = shared_conv or nn.Conv1d(word_dim, filters, window, padding=window // 2)
        self.second_conv = (
            nn.Conv1d(filters, filters, window, padding=window // 2) if shared_conv else None
        )
        self.gate = nn.Linear(filters, aspects * dim)
        self.project = nn.Linear(filters, aspects * dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, words: torch.Tensor, mask: torch.Tensor, queries: torch.Tensor):
        c = F.relu(self.conv(words.transpose(1, 2)))
        if self.second_conv is not None:
            c = F.relu(self.second_conv(c))
        c = c.transpose(1, 2)  # [B, T, filters]
        shape = (*c.shape[:2], self.aspects, self.dim)
        h = torch.sigmoid(self.gate(c)).view(shape) * self.project(c).view(shape)
        logits = torch.einsum("btmk,mk->btm", h, queries)
        logits = logits.masked_fill(~mask[:, :, None], float("-inf"))
        # an empty document (no review) has no aspects: zeros, not NaN
        weights = torch.nan_to_num(torch.softmax(logits, dim=1))
        return self.dropout(torch.einsum("btm,btmk->bmk", weights, h))


class Direction(nn.Module):
    """The extractors of one prediction direction: the user's documents in one domain, the items
    of the other."""

    def __init__(self, word_dim, filters, window, aspects, dim, dropout):
        super().__init__()
        self.user = AspectExtractor(word_dim, filters, window, aspects, dim, dropout)
        self.auxiliary = AspectExtractor(
            word_dim, filters, window, aspects, dim, dropout, shared_conv=self.user.conv
        )
        self.item = AspectExtractor(word_dim, filters, window, aspects, dim, dropout)
        self.fusion_gate = nn.Linear(2 * dim, dim)
        self.fusion = nn.Linear(2 * dim, dim)

    def users(self, own, own_mask, borrowed, borrowed_mask, queries):
        u = self.user(own, own_mask, queries)
        a = self.auxiliary(borrowed, borrowed_mask, queries)
        g = torch.sigmoid(self.fusion_gate(torch.cat([a - u, a * u], -1)))
        return torch.tanh(self.fusion(torch.cat([g * a, u], -1)))


class CATN(TargetDomainRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.GENERAL

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.predicts_ratings = self.explicit
        dim = int(config["embedding_size"])
        aspects = int(setting(config, "num_aspects"))
        word_dim = int(setting(config, "word_dim"))
        filters, window = int(setting(config, "conv_filters")), int(setting(config, "conv_window"))
        dropout = float(config["dropout_prob"])
        self.num_negatives = int(setting(config, "num_negatives"))
        docs = build_documents(
            dataset, "CATN", int(setting(config, "max_doc_tokens")), int(config["seed"])
        )
        # documents and frozen word vectors ride along in checkpoints as buffers
        for domain in (AUX, TARGET):
            self.register_buffer(f"user_docs_{domain}", docs.users[domain])
            self.register_buffer(f"auxiliary_docs_{domain}", docs.auxiliary[domain])
        self.register_buffer("item_docs", docs.items)
        self.words = ReviewWords(docs.vocabulary, word_dim)
        self.aspect_queries = nn.Parameter(torch.randn(2, aspects, dim) * 0.1)  # per domain
        self.correlation = nn.Parameter(torch.eye(dim) + 0.01 * torch.randn(dim, dim))
        # directions[d]: predicts ratings of domain d from the user's documents of the other
        self.directions = nn.ModuleList(
            Direction(word_dim, filters, window, aspects, dim, dropout) for _ in (AUX, TARGET)
        )
        self.user_bias = nn.Embedding(self.n_users, 1)
        self.item_bias = nn.Embedding(self.n_items, 1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self._register_domain_mean(dataset)
        role, split = dataset.user_role, dataset.user_split
        self.register_buffer(
            "is_train_overlap", (role == UserRole.OVERLAP) & (split == SplitPart.TRAIN)
        )
        self._register_domain_items(dataset)
        self._item_aspects = None

    def training_rows(self, dataset) -> torch.Tensor:
        """The interactions that train: the training overlap users' (both domains)."""
        return self.is_train_overlap.cpu()[dataset.inter_feat[dataset.uid_field]]

    def train(self, mode: bool = True):
        self._item_aspects = None  # weights may change
        return super().train(mode)

    # -- encoding ----------------------------------------------------------------------------
    def _user_aspects(self, users: torch.Tensor, domain: int) -> torch.Tensor:
        """U' [n, M, k] of ``users`` for predicting ``domain``'s ratings (from their documents
        of the other domain)."""
        other = 1 - domain
        own = self.words(getattr(self, f"user_docs_{other}")[users])
        borrowed = self.words(getattr(self, f"auxiliary_docs_{other}")[users])
        return self.directions[domain].users(*own, *borrowed, self.aspect_queries[other])

    def _item_aspects_of(self, items: torch.Tensor, domain: int) -> torch.Tensor:
        words, mask = self.words(self.item_docs[items])
        return self.directions[domain].item(words, mask, self.aspect_queries[domain])

    def _correlation(self, domain: int) -> torch.Tensor:
        return self.correlation if domain == TARGET else self.correlation.T

    def _interaction(self, user_aspects, item_aspects, domain: int) -> torch.Tensor:
        """mean over aspect pairs of ``(U' Mc) Iᵀ ⊙ S_att`` for matching rows [n, M, k] × [n, M, k]."""
        mc = self._correlation(domain)
        s = (user_aspects @ mc) @ item_aspects.transpose(1, 2)  # [n, M, M]
        return (s * self._aspect_attention(domain)).mean(dim=(1, 2))

    def _aspect_attention(self, domain: int) -> torch.Tensor:
        """[M, M] global correlation of the user's domain's aspects with ``domain``'s."""
        queries_u, queries_i = self.aspect_queries[1 - domain], self.aspect_queries[domain]
        return F.leaky_relu(queries_u @ self._correlation(domain) @ queries_i.T)

    def _bias(self, users, items, domain: int):
        bias = self.item_bias(items).squeeze(-1) + self.user_bias(users).squeeze(-1)
        return bias + self.domain_mean[domain] if self.explicit else bias

    # -- training ----------------------------------------------------------------------------
    def _domain_loss(self, users, items, ratings, domain: int):
        unique_users, user_rows = torch.unique(users, return_inverse=True)
        user_aspects = self._user_aspects(unique_users, domain)[user_rows]
        if self.explicit:
            candidates = items
        else:
            pool = getattr(self, f"domain_items_{domain}")
            draws = torch.randint(len(pool), (len(items) * self.num_negatives,))
            candidates = torch.cat([items, pool[draws.to(pool.device)]])
        unique_items, item_rows = torch.unique(candidates, return_inverse=True)
        item_aspects = self._item_aspects_of(unique_items, domain)[item_rows]
        repeat = len(candidates) // len(items)
        user_rep = users.repeat(repeat)
        scores = self._interaction(user_aspects.repeat(repeat, 1, 1), item_aspects, domain)
        scores = scores + self._bias(user_rep, candidates, domain)
        if self.explicit:
            return F.mse_loss(scores, ratings.float())
        labels = torch.zeros_like(scores)
        labels[: len(items)] = 1.0
        return F.binary_cross_entropy_with_logits(scores, labels)

    def calculate_loss(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        if not self.is_train_overlap[users].all():
            raise RuntimeError("CATN trains on the training overlap users' interactions only")
        target = self.target_rows(interaction)
        ratings = interaction[self.RATING] if self.explicit else None
        loss = items.new_zeros((), dtype=torch.float)
        for domain, rows in ((TARGET, target), (AUX, ~target)):
            if rows.any():
                share = rows.float().mean()  # each domain's rows count as in one loss
                loss = loss + share * self._domain_loss(
                    users[rows], items[rows], ratings[rows] if self.explicit else None, domain
                )
        return loss

    # -- scoring the target domain -------------------------------------------------------------
    def predict(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        unique_users, rows = torch.unique(users, return_inverse=True)
        user_aspects = self._user_aspects(unique_users, TARGET)[rows]
        unique_items, item_rows = torch.unique(items, return_inverse=True)
        item_aspects = self._item_aspects_of(unique_items, TARGET)[item_rows]
        score = self._interaction(user_aspects, item_aspects, TARGET)
        return score + self._bias(users, items, TARGET)

    def _all_item_aspects(self) -> torch.Tensor:
        if self._item_aspects is None or self.training:
            all_items = torch.arange(self.n_items, device=self.item_bias.weight.device)
            chunks = [self._item_aspects_of(part, TARGET) for part in all_items.split(1024)]
            self._item_aspects = torch.cat(chunks)
        return self._item_aspects

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID]
        user_aspects = self._user_aspects(users, TARGET) @ self._correlation(TARGET)  # [n, M, k]
        attention = self._aspect_attention(TARGET)  # [M, M]
        items = self._all_item_aspects()  # [n_items, M, k]
        # mean_ab (U'Mc)_a . I_b att_ab, for every item at once
        weighted = torch.einsum("ab,ibk->iak", attention, items)  # [n_items, M, k]
        m = attention.numel()
        scores = torch.einsum("uak,iak->ui", user_aspects, weighted) / m
        scores = scores + self.item_bias.weight.view(1, -1) + self.user_bias(users)
        if self.explicit:
            scores = scores + self.domain_mean[TARGET]
        return scores.view(-1)
