"""Recommend for a new cold-start user from a trained MuSiC checkpoint, without retraining.

Given the user's auxiliary-domain history (items, and ratings on explicit data) and, when the
model's user vectors come from review text, their auxiliary-domain reviews, the user's
auxiliary feature ``u_A`` is *folded in*:

* exactly, by the model's own path, when a user's feature is their frozen vector through the
  user MLP (multimodal, interaction or hybrid features): the user vector that
  ``user_vectors`` builds (``history``: from the items and ratings; ``reviews``: the reviews
  re-embedded by the encoder, prompt and merging rule of the ``users_aux`` table's manifest,
  :mod:`recbole_music.review_vectors`; ``both``: the two side by side) through the user MLP;
* otherwise (ID embeddings, fused features, or a review model given no reviews — said in the
  log) as the ridge solution that best explains the history under the model's own rating
  function, with the item features frozen.

The diffusion model then generates ``u_T`` from noise, conditioned on ``u_A``, and the top-N
target items follow from the dot products.

    python -m recbole_music.recommend --checkpoint saved/MuSiC-....pth --history history.tsv \
        [--reviews reviews.tsv]
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from recbole.utils import init_seed

import recbole_music  # noqa: F401  (registers the plugin)
from dataset_prep.features.sources import reviews_by_user
from dataset_prep.layout import AUX, review_file
from recbole_music.checkpoint import (
    AVERAGE_MEMBERS,
    CheckpointError,
    config_from_checkpoint,
    read_checkpoint,
)
from recbole_music.data.dataset import CrossDomainDataset
from recbole_music.model.music.features import USER_VECTOR_SOURCES
from recbole_music.model.score_average import standardised
from recbole_music.quick_start import prepare_data
from recbole_music.registry import PLUGIN_MODELS
from recbole_music.review_vectors import ReviewVectorizer

logger = logging.getLogger(__name__)


def check_history(
    items: list[str], ratings: list[float] | None, rating_range: tuple[float, float] | None
) -> None:
    """A history names each item once, and its ratings (when the model was trained on ratings)
    are finite and within the trained range: a rating of 99 or NaN would give meaningless
    scores, not an error, further on."""
    seen = set()
    for item in items:
        if item in seen:
            raise ValueError(f"item {item!r} is listed twice in the history")
        seen.add(item)
    if rating_range is None or ratings is None:
        return
    if len(ratings) != len(items):
        raise ValueError(f"{len(items)} items but {len(ratings)} ratings")
    low, high = rating_range
    for item, value in zip(items, ratings):
        if not low <= float(value) <= high:  # NaN fails this too
            raise ValueError(
                f"rating {value!r} of item {item!r} is outside the trained ratings' range "
                f"{low:g}..{high:g}"
            )


@dataclass
class Recommendation:
    target_feature: torch.Tensor  # the generated u_T, [d]
    items: list[str]  # target-domain item ids, best first
    scores: list[float]


class ColdStartRecommender:
    def __init__(self, model, dataset):
        if not hasattr(model, "diffusion"):
            raise ValueError(
                f"{type(model).__name__} has no diffusion model: use a MuSiC checkpoint"
            )
        self.model = model.eval()
        self.dataset = dataset
        self._review_vectorizer = None
        self._aux_reviews = None

    @classmethod
    def from_checkpoint(cls, checkpoint_file: str | Path) -> ColdStartRecommender:
        """Rebuild the dataset and model a checkpoint was trained with, and load its weights."""
        checkpoint = read_checkpoint(checkpoint_file)  # weights_only: nothing in it runs
        model_name = checkpoint["config"].get("model")
        if model_name not in PLUGIN_MODELS:
            raise CheckpointError(
                f"checkpoint {checkpoint_file} is of model {model_name!r}: use a MuSiC checkpoint"
            )
        model_class = PLUGIN_MODELS[model_name]
        config = config_from_checkpoint(checkpoint, model_class)
        init_seed(config["seed"], config["reproducibility"])
        dataset = CrossDomainDataset(config)
        train_data, _, _ = prepare_data(config, dataset)
        dataset = train_data._dataset
        first = cls(
            rebuilt_model(model_class, config, dataset, checkpoint, checkpoint_file), dataset
        )
        parts = checkpoint.get(AVERAGE_MEMBERS) or []
        if not parts:
            return first
        members = [first]
        for part in parts:  # a score average (size_search_average): same data, other sizes
            member_config = config_from_checkpoint(part, model_class)
            model = rebuilt_model(model_class, member_config, dataset, part, checkpoint_file)
            members.append(cls(model, dataset))
        return AveragedRecommender(members)

    # -- u_A of a new user -------------------------------------------------------------------
    def fold_in_aux_feature(
        self,
        items: list[str],
        ratings: list[float] | None = None,
        reviews: list[tuple[float, str]] | None = None,
        reg: float = 1.0,
    ) -> torch.Tensor:
        """``u_A`` of a new user from their auxiliary history (item ids, ratings on explicit
        data) and, for a model whose user vectors read reviews, their auxiliary reviews as
        (timestamp, text) pairs: exact by the model's own path where a user's feature is their
        frozen vector through the user MLP, else the ridge fit of ``u_A`` to the history with
        item features frozen."""
        check_history(items, ratings, self.rating_range if self.model.explicit else None)
        known, unknown = self.split_known(items)
        if not known:
            raise ValueError("none of the history's items is known to the trained model")
        if unknown:
            logger.warning(
                "%d of the history's %d items are unknown to the trained model and not used: %s",
                len(unknown),
                len(items),
                ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""),
            )
        ids = torch.as_tensor(self.dataset.token2id(self.dataset.iid_field, known))
        if (self.dataset.target_item_mask[ids]).any():
            raise ValueError("the history must hold auxiliary-domain items only")
        model = self.model
        y = self._history_targets(items, ratings, known)
        rule = model.user_vectors
        if reviews is not None and not self.reads_reviews:
            logger.warning(
                "this model's user vectors do not read reviews (feature_source=%s, "
                "user_vectors=%s): the reviews given are not used",
                model.feature_source,
                rule,
            )
        with torch.no_grad():
            if self._exact_fold_in(reviews):
                review_vector = (
                    self.review_vectorizer().vector(reviews) if rule != "history" else None
                )
                return model.features.new_user_aux_feature(
                    rule,
                    ids,
                    y.float() if model.explicit else None,
                    model.domain_mean[0],
                    review_vector,
                )
            if self.reads_reviews:
                logger.warning(
                    "user_vectors=%s reads reviews, and none were given: u_A is a ridge fit to "
                    "the history instead (pass the user's auxiliary reviews for the model's own "
                    "path)",
                    rule,
                )
            return self._ridge_fold_in(ids, y, reg)

    def split_known(self, items: list[str]) -> tuple[list[str], list[str]]:
        """(items the trained model knows, the others), each in history order."""
        vocabulary = self.dataset.field2token_id[self.dataset.iid_field]
        return [i for i in items if i in vocabulary], [i for i in items if i not in vocabulary]

    @property
    def rating_range(self) -> tuple[float, float] | None:
        """(lowest, highest) rating the model was trained on; None on implicit data."""
        if not self.dataset.is_explicit:
            return None
        ratings = self.dataset.inter_feat[self.dataset.rating_field]
        return float(ratings.min()), float(ratings.max())

    @property
    def reads_reviews(self) -> bool:
        """Whether the model's user vectors start from review text."""
        model = self.model
        return model.feature_source in USER_VECTOR_SOURCES and model.user_vectors in (
            "reviews",
            "both",
        )

    def _exact_fold_in(self, reviews) -> bool:
        model = self.model
        return model.feature_source in USER_VECTOR_SOURCES and (
            model.user_vectors == "history" or reviews is not None
        )

    def fold_in_path(self, reviews=None) -> str:
        """How :meth:`fold_in_aux_feature` will compute ``u_A``, in words."""
        if not self._exact_fold_in(reviews):
            return "ridge fit to the history (item features frozen)"
        what = {"history": "history", "reviews": "reviews", "both": "reviews + history"}
        return f"exact (the model's user MLP over {what[self.model.user_vectors]})"

    def _history_targets(self, items, ratings, known) -> torch.Tensor:
        if not self.model.explicit:
            return torch.ones(len(known), dtype=torch.double)  # implicit: every item is liked
        if ratings is None:
            raise ValueError("this model was trained on ratings: give the history's ratings")
        rating_of = dict(zip(items, ratings))
        return torch.tensor([float(rating_of[i]) for i in known], dtype=torch.double)

    def _ridge_fold_in(self, ids, y, reg: float) -> torch.Tensor:
        """The ``u_A`` that best explains the history's ratings (implicit: likes) under the
        model's rating function, item features frozen (ridge, ``reg``)."""
        model = self.model
        q = model.features.items(ids).double()  # [n, d]
        if model.rating_bias:
            y = y - model.item_bias(ids).squeeze(-1).double()
            if model.explicit:
                y = y - model.domain_mean[0].double()
        eye = torch.eye(q.shape[1], dtype=torch.double)
        return torch.linalg.solve(q.T @ q + reg * eye, q.T @ y).float()

    def review_vectorizer(self) -> ReviewVectorizer:
        """Embeds a new user's reviews as the dataset's ``users_aux`` table was embedded."""
        if self._review_vectorizer is None:
            self._review_vectorizer = ReviewVectorizer.for_table(self.dataset.feature_path())
        return self._review_vectorizer

    # -- recommend -----------------------------------------------------------------------------
    @torch.no_grad()
    def recommend(self, aux_feature: torch.Tensor, topk: int = 10, seed: int = 0) -> Recommendation:
        target, scores = self.target_scores(aux_feature, seed)
        return self._top(target, scores, topk)

    @torch.no_grad()
    def target_scores(self, aux_feature: torch.Tensor, seed: int = 0):
        """(the generated ``u_T``, the scores of every target item in id order)."""
        model = self.model
        generator = torch.Generator().manual_seed(seed)
        x_T = torch.randn(1, aux_feature.shape[-1], generator=generator)
        target = model.generate(aux_feature.view(1, -1), x_T=x_T, generator=generator)[0]
        items = self._target_items()
        # the item MLP over every item once per model, not per call: on the paper's 157k target
        # items of 4,096 dims each call would cost ~80 GFLOP
        scores = model._all_item_features()[items] @ target
        if model.rating_bias:
            scores = scores + model.item_bias(items).squeeze(-1)
            if model.explicit:
                scores = scores + model.domain_mean[1]
        return target, scores

    def _target_items(self) -> torch.Tensor:
        return torch.nonzero(self.dataset.target_item_mask).flatten()

    def _top(self, target, scores, topk: int) -> Recommendation:
        items = self._target_items()
        top = torch.topk(scores, min(topk, len(items)))
        tokens = self.dataset.id2token(self.dataset.iid_field, items[top.indices].numpy())
        return Recommendation(target, [str(t) for t in tokens], top.values.tolist())

    def recommend_from_history(
        self, items, ratings=None, topk=10, seed=0, reviews=None
    ) -> Recommendation:
        aux_feature = self.fold_in_aux_feature(items, ratings, reviews)
        return self.recommend(aux_feature, topk=topk, seed=seed)

    def history_of(self, user: str) -> tuple[list[str], list[float] | None]:
        """The auxiliary-domain history of a user of the dataset (e.g. a held-out test user)."""
        data = self.dataset._aux_history.inter_feat
        uid = self.dataset.token2id(self.dataset.uid_field, user)
        rows = np.flatnonzero(data[self.dataset.uid_field].numpy() == uid)
        if len(rows) == 0:
            raise ValueError(
                f"user {user!r} has no auxiliary-domain interactions in dataset "
                f"'{self.dataset.dataset_name}': nothing to recommend from"
            )
        items = self.dataset.id2token(self.dataset.iid_field, data[self.dataset.iid_field][rows])
        ratings = (
            data[self.dataset.rating_field][rows].tolist() if self.dataset.is_explicit else None
        )
        return [str(i) for i in items], ratings

    def reviews_of(self, user: str) -> list[tuple[float, str]]:
        """The auxiliary-domain reviews of a user of the dataset, (timestamp, text) pairs, as
        ``dataset_prep features`` read them ([] when the dataset has none)."""
        if self._aux_reviews is None:  # the whole file is read once
            folder, name = Path(self.dataset.dataset_path), self.dataset.dataset_name
            has_reviews = review_file(folder, name).is_file()
            self._aux_reviews = reviews_by_user(folder, name, AUX) if has_reviews else {}
        return self._aux_reviews.get(user, [])


class AveragedRecommender(ColdStartRecommender):
    """A score average's checkpoint (``size_search_average``): each member folds the user in
    and scores the target items its own way, and the ranking follows the mean of the members'
    standardised scores, as in evaluation (recbole_music/model/score_average.py). Everything
    else (the history checks, the fold-in path in words, ``target_feature``) is the first
    member's, the candidate that did best alone."""

    def __init__(self, members: list[ColdStartRecommender]):
        super().__init__(members[0].model, members[0].dataset)
        self.members = members

    def fold_in_path(self, reviews=None) -> str:
        path = super().fold_in_path(reviews)
        return f"{path}, in each of the {len(self.members)} models of the average"

    def recommend_from_history(
        self, items, ratings=None, topk=10, seed=0, reviews=None
    ) -> Recommendation:
        first_target, total = None, None
        for index, member in enumerate(self.members):
            # the members read one dataset: what the history lacks is said once, by the first
            with _warnings_silenced() if index else contextlib.nullcontext():
                aux_feature = member.fold_in_aux_feature(items, ratings, reviews)
            target, scores = member.target_scores(aux_feature, seed)
            scores = standardised(scores.view(1, -1), torch.ones(len(scores), dtype=torch.bool))
            first_target = target if first_target is None else first_target
            total = scores if total is None else total + scores
        return self._top(first_target, (total / len(self.members))[0], topk)


@contextlib.contextmanager
def _warnings_silenced():
    """This module's warnings held back (errors still pass) while the block runs."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def rebuilt_model(model_class, config, dataset, checkpoint: dict, checkpoint_file):
    """``model_class`` built on ``dataset`` under ``config``, with the checkpoint's weights."""
    model = model_class(config, dataset)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:  # weights that do not fit the model rebuilt from the data
        raise CheckpointError(
            f"checkpoint {checkpoint_file} does not fit dataset {config['dataset']!r} as it "
            f"is now: {str(error).strip()}"
        ) from None
    return model
