"""OmniMatch (Dai, El-Roby, Adeeb & Thaker, "OmniMatch: Overcoming the Cold-Start Problem in
Cross-Domain Recommendations using Auxiliary Reviews", EDBT 2025), written from the paper's
description; docs/baselines.md says what we simplified.

A cold-start user has no target-domain reviews, so OmniMatch *borrows* some: for each of the
user's auxiliary-domain reviews (item, rating), a training user who gave that item the same
rating lends one of their target-domain reviews
(:meth:`~recbole_music.data.review_documents.ReviewCorpus.borrowed_target_documents`). That
document stands in for the user's own target-domain reviews, in training (for the held-out users'
auxiliary-domain ratings) and when the user is scored.

1. **Encoders.** Three text CNNs — the user's auxiliary-domain document, the user's
   target-domain document (own or borrowed), the item's document — over shared word vectors:
   windows 3, 4 and 5, ReLU, max over positions.
2. **Features.** A user's encoding splits into a *domain-invariant* part ``c`` (one layer shared
   by both domains) and a *domain-specific* part ``s`` (one layer per domain); an item's into
   ``e``. A rating is a linear layer over ``ReLU([c_t; s_t; e])``: the target-side user features
   and the item's.
3. **Domain alignment.** A domain classifier reads ``c`` through a gradient-reversal layer (the
   shared part must not tell the domains apart); another reads ``s`` directly (the specific part
   should). Both see the documents of every user with reviews in a domain.
4. **Supervised contrastive loss.** For each rating, the views ``[c_s; s_s; e]`` (from the
   auxiliary-domain document) and ``[c_t; s_t; e]`` (from the target-domain one), projected and
   normalised, are pulled together when the ratings are equal (temperature 0.07): the two
   documents of one user should say the same about an item.

Loss: squared error on the ratings + ``adversarial_weight`` × (the two classifiers' losses) +
``contrastive_weight`` × the contrastive loss; on implicit data BCE of each interaction against
``num_negatives`` items of its domain, and the contrastive positives are each row's own pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.utils import InputType, ModelType
from torch import nn

from recbole_music.config import setting
from recbole_music.data.dataset import SplitPart, UserRole
from recbole_music.data.review_documents import ReviewCorpus
from recbole_music.model.baselines.review_words import ReviewWords
from recbole_music.model.target_domain_base import TargetDomainRecommender

AUX, TARGET = 0, 1


class TextCNN(nn.Module):
    """Word vectors [B, T, w] → [B, filters · len(windows)]: ReLU convolutions, max over time."""

    def __init__(self, word_dim: int, filters: int, windows: tuple[int, ...]):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(word_dim, filters, w, padding=w // 2) for w in windows)
        self.width = filters * len(windows)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        x = words.transpose(1, 2)
        return torch.cat([F.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1)


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def supervised_contrastive(anchors, others, labels, temperature: float) -> torch.Tensor:
    """Khosla et al.'s loss with ``anchors[i]`` against every ``others[j]``: positives are the
    rows with ``labels[j] == labels[i]`` (``anchors``, ``others``: L2-normalised [n, d]).

    The mean log-probability of ``i``'s positives is ``aᵢ·(Σ_{j∈P(i)} oⱼ)/(τ|P(i)|) − LSEᵢ``:
    the positives enter through one sum of ``others`` per label, so only the log-sum-exp needs
    the [n, n] logits (a batch holds thousands of rows; no [n, n] mask is built)."""
    anchors = anchors / temperature
    log_normaliser = torch.logsumexp(anchors @ others.T, dim=1)
    groups, group_of = torch.unique(labels, return_inverse=True)
    sums = others.new_zeros(len(groups), others.shape[1]).index_add(0, group_of, others)
    sizes = torch.bincount(group_of, minlength=len(groups)).to(others.dtype)
    positive_logit = (anchors * sums[group_of]).sum(1) / sizes[group_of]
    return (log_normaliser - positive_logit).mean()


class OmniMatch(TargetDomainRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.GENERAL

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.predicts_ratings = self.explicit
        word_dim = int(setting(config, "word_dim"))
        filters = int(setting(config, "conv_filters"))
        windows = tuple(int(w) for w in setting(config, "conv_windows"))
        shared_dim, item_dim = int(config["embedding_size"]), int(setting(config, "item_dim"))
        self.dropout = nn.Dropout(float(config["dropout_prob"]))
        self.num_negatives = int(setting(config, "num_negatives"))
        self.adversarial_weight = float(setting(config, "adversarial_weight"))
        self.contrastive_weight = float(setting(config, "contrastive_weight"))
        self.temperature = float(setting(config, "contrastive_temperature"))
        self.adversarial_users = int(setting(config, "adversarial_users"))
        self.reversal_warmup = int(setting(config, "reversal_warmup_steps"))

        role, split = dataset.user_role, dataset.user_split
        overlap = role == UserRole.OVERLAP
        self.register_buffer("is_train_overlap", overlap & (split == SplitPart.TRAIN))
        self.register_buffer("is_overlap", overlap)
        corpus = ReviewCorpus(
            dataset, "OmniMatch", int(setting(config, "max_doc_tokens")), int(config["seed"])
        )
        own_target = corpus.user_documents(True)
        borrowed = corpus.borrowed_target_documents(donors=self.is_train_overlap)
        # a user without target-domain training reviews (held out) reads the borrowed ones
        has_own = self.is_train_overlap | (role == UserRole.SIDE)
        self.register_buffer("user_docs_0", corpus.user_documents(False))
        self.register_buffer("user_docs_1", torch.where(has_own[:, None], own_target, borrowed))
        self.register_buffer("item_docs", corpus.item_documents())
        for domain in (AUX, TARGET):  # users whose documents the domain classifiers read
            docs = getattr(self, f"user_docs_{domain}")
            self.register_buffer(
                f"documented_{domain}", torch.nonzero((docs != 0).any(1)).flatten()
            )
        self.register_buffer("reversal_steps", torch.zeros((), dtype=torch.long))

        self.words = ReviewWords(corpus.vocabulary, word_dim)
        self.user_encoders = nn.ModuleList(
            TextCNN(word_dim, filters, windows) for _ in (AUX, TARGET)
        )
        self.item_encoder = TextCNN(word_dim, filters, windows)
        width = self.item_encoder.width
        self.shared = nn.Linear(width, shared_dim)
        self.specific = nn.ModuleList(nn.Linear(width, shared_dim) for _ in (AUX, TARGET))
        self.item_head = nn.Linear(width, item_dim)
        view = 2 * shared_dim + item_dim
        self.rating = nn.Linear(view, 1)
        if self.explicit:  # ours: start at the mean training rating, not at 0 stars
            ratings = dataset.inter_feat[dataset.rating_field].float()
            nn.init.constant_(self.rating.bias, float(ratings.mean()))
        self.projection = nn.Linear(view, int(setting(config, "contrastive_dim")))
        self.domain_classifier = nn.Linear(shared_dim, 2)
        self.specific_classifier = nn.Linear(shared_dim, 2)
        self._register_domain_items(dataset)
        self._item_features = None

    def training_rows(self, dataset) -> torch.Tensor:
        """The interactions that train: every overlapping user's auxiliary-domain ones (a held-out
        user with the borrowed document) and the training overlap users' target-domain ones."""
        feat = dataset.inter_feat
        users = feat[dataset.uid_field]
        is_target = feat[dataset.domain_field] == dataset.target_domain_id
        overlap, train = self.is_overlap.cpu()[users], self.is_train_overlap.cpu()[users]
        return (overlap & ~is_target) | (train & is_target)

    def train(self, mode: bool = True):
        self._item_features = None
        return super().train(mode)

    # -- features ------------------------------------------------------------------------------
    def _user_view(self, users: torch.Tensor, domain: int) -> torch.Tensor:
        """[c; s] of ``users`` from their ``domain`` document [n, 2 · shared_dim]."""
        words, _ = self.words(getattr(self, f"user_docs_{domain}")[users])
        h = self.dropout(self.user_encoders[domain](words))
        return torch.cat([self.shared(h), self.specific[domain](h)], dim=1)

    def _item_view(self, items: torch.Tensor) -> torch.Tensor:
        words, _ = self.words(self.item_docs[items])
        return self.item_head(self.dropout(self.item_encoder(words)))

    def _rate(self, user_view, item_view) -> torch.Tensor:
        return self.rating(self.dropout(F.relu(torch.cat([user_view, item_view], 1)))).squeeze(1)

    # -- training ------------------------------------------------------------------------------
    def _reversal_scale(self) -> float:
        """DANN's schedule 2 / (1 + exp(−10 p)) − 1, p = the share of the warm-up steps done."""
        progress = min(1.0, float(self.reversal_steps) / max(1, self.reversal_warmup))
        return 2.0 / (1.0 + torch.exp(torch.tensor(-10.0 * progress)).item()) - 1.0

    def _domain_losses(self, device) -> torch.Tensor:
        shared, specific, labels = [], [], []
        for domain in (AUX, TARGET):
            pool = getattr(self, f"documented_{domain}")
            if not len(pool):
                continue
            draw = pool[torch.randint(len(pool), (self.adversarial_users,), device=device)]
            view = self._user_view(draw, domain)
            half = view.shape[1] // 2
            shared.append(view[:, :half])
            specific.append(view[:, half:])
            labels.append(torch.full((len(draw),), domain, device=device))
        labels = torch.cat(labels)
        scale = self._reversal_scale()
        reversed_shared = _ReverseGradient.apply(torch.cat(shared), scale)
        adversarial = F.cross_entropy(self.domain_classifier(reversed_shared), labels)
        specific = F.cross_entropy(self.specific_classifier(torch.cat(specific)), labels)
        return adversarial + specific

    def calculate_loss(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        if not self.is_overlap[users].all():
            raise RuntimeError("OmniMatch trains on overlapping users' interactions only")
        target = self.target_rows(interaction)
        unique, rows = torch.unique(users, return_inverse=True)
        target_view = self._user_view(unique, TARGET)[rows]
        source_view = self._user_view(unique, AUX)[rows]
        labels = interaction[self.RATING].float() if self.explicit else None
        if self.explicit:
            candidates, repeat = items, 1
        else:
            # each row's negatives come from its own domain (rows repeat block by block)
            n = len(items) * self.num_negatives
            draws = [
                getattr(self, f"domain_items_{d}")[
                    torch.randint(len(getattr(self, f"domain_items_{d}")), (n,))
                ]
                for d in (AUX, TARGET)
            ]
            negatives = torch.where(target.repeat(self.num_negatives), draws[TARGET], draws[AUX])
            candidates, repeat = torch.cat([items, negatives]), 1 + self.num_negatives
        unique_items, item_rows = torch.unique(candidates, return_inverse=True)
        item_view = self._item_view(unique_items)[item_rows]
        scores = self._rate(target_view.repeat(repeat, 1), item_view)
        if self.explicit:
            loss = F.mse_loss(scores, labels)
        else:
            truth = torch.zeros_like(scores)
            truth[: len(items)] = 1.0
            loss = F.binary_cross_entropy_with_logits(scores, truth)
        positives = item_view[: len(items)]
        anchors = F.normalize(self.projection(torch.cat([source_view, positives], 1)), dim=1)
        others = F.normalize(self.projection(torch.cat([target_view, positives], 1)), dim=1)
        same = labels if self.explicit else torch.arange(len(items), device=items.device)
        contrastive = supervised_contrastive(anchors, others, same, self.temperature)
        loss = loss + self.contrastive_weight * contrastive
        loss = loss + self.adversarial_weight * self._domain_losses(items.device)
        self.reversal_steps += 1
        return loss

    # -- scoring the target domain -------------------------------------------------------------
    def predict(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        unique, rows = torch.unique(users, return_inverse=True)
        user_view = self._user_view(unique, TARGET)[rows]
        unique_items, item_rows = torch.unique(items, return_inverse=True)
        return self._rate(user_view, self._item_view(unique_items)[item_rows])

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID]
        user_view = F.relu(self._user_view(users, TARGET))
        if self._item_features is None or self.training:
            all_items = torch.arange(self.n_items, device=users.device)
            self._item_features = F.relu(
                torch.cat([self._item_view(part) for part in all_items.split(1024)])
            )
        # the rating layer is linear over ReLU([user; item]): a user part plus an item part
        weight = self.rating.weight.view(-1)
        split = user_view.shape[1]
        scores = (user_view @ weight[:split])[:, None] + (self._item_features @ weight[split:])
        return (scores + self.rating.bias).view(-1)
