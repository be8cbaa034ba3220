"""Recommend for a new cold-start user from a trained MuSiC checkpoint, without retraining.

Given the user's auxiliary-domain history (items, and ratings on explicit data), the user's
auxiliary feature ``u_A`` is *folded in*. With ``user_vectors: history`` and multimodal features
it is exact: the user's history vector through the model's user MLP, as in training. Otherwise it
is the ridge solution that best explains the history under the model's own rating function, with
the item features frozen (review-text vectors of a new user are not used by this path). The diffusion model then generates ``u_T`` from noise,
conditioned on ``u_A``, and the top-N target items follow from the dot products.

    python -m recbole_music.recommend --checkpoint saved/MuSiC-....pth --history history.tsv
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from recbole.utils import init_seed

import recbole_music  # noqa: F401  (registers the plugin)
from recbole_music.data.dataset import CrossDomainDataset
from recbole_music.quick_start import prepare_data
from recbole_music.registry import PLUGIN_MODELS


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

    @classmethod
    def from_checkpoint(cls, checkpoint_file: str | Path) -> ColdStartRecommender:
        """Rebuild the dataset and model a checkpoint was trained with, and load its weights."""
        checkpoint = torch.load(str(checkpoint_file), map_location="cpu", weights_only=False)
        config = checkpoint["config"]
        config["device"] = torch.device("cpu")
        init_seed(config["seed"], config["reproducibility"])
        dataset = CrossDomainDataset(config)
        train_data, _, _ = prepare_data(config, dataset)
        model = PLUGIN_MODELS[config["model"]](config, train_data._dataset)
        model.load_state_dict(checkpoint["state_dict"])
        return cls(model, train_data._dataset)

    # -- u_A of a new user -------------------------------------------------------------------
    def fold_in_aux_feature(
        self, items: list[str], ratings: list[float] | None = None, reg: float = 1.0
    ) -> torch.Tensor:
        """``u_A`` of a new user: computed from the history when the model builds user vectors
        from history (``user_vectors: history``), else the ridge fit of ``u_A`` to the history
        with item features frozen."""
        known = [i for i in items if i in self.dataset.field2token_id[self.dataset.iid_field]]
        if not known:
            raise ValueError("none of the history's items is known to the trained model")
        ids = torch.as_tensor(self.dataset.token2id(self.dataset.iid_field, known))
        if (self.dataset.target_item_mask[ids]).any():
            raise ValueError("the history must hold auxiliary-domain items only")
        model = self.model
        with torch.no_grad():
            q = model.features.items(ids).double()  # [n, d]
            if model.explicit:
                if ratings is None:
                    raise ValueError(
                        "this model was trained on ratings: give the history's ratings"
                    )
                rating_of = dict(zip(items, ratings))
                y = torch.tensor([float(rating_of[i]) for i in known], dtype=torch.double)
            else:
                y = torch.ones(len(known), dtype=torch.double)  # implicit: every item is liked
            if model.feature_source == "multimodal" and model.user_vectors == "history":
                # u_A is a function of the history itself: no fit needed
                ratings_used = y.float() if model.explicit else None
                return model.features.aux_feature_from_history(
                    ids, ratings_used, model.domain_mean[0]
                )
            if model.rating_bias:
                y = y - model.item_bias(ids).squeeze(-1).double()
                if model.explicit:
                    y = y - model.domain_mean[0].double()
            eye = torch.eye(q.shape[1], dtype=torch.double)
            solution = torch.linalg.solve(q.T @ q + reg * eye, q.T @ y)
        return solution.float()

    # -- recommend -----------------------------------------------------------------------------
    @torch.no_grad()
    def recommend(self, aux_feature: torch.Tensor, topk: int = 10, seed: int = 0) -> Recommendation:
        model = self.model
        generator = torch.Generator().manual_seed(seed)
        x_T = torch.randn(1, aux_feature.shape[-1], generator=generator)
        target = model.generate(aux_feature.view(1, -1), x_T=x_T, generator=generator)[0]
        items = torch.nonzero(self.dataset.target_item_mask).flatten()
        scores = model.features.items(items) @ target
        if model.rating_bias:
            scores = scores + model.item_bias(items).squeeze(-1)
            if model.explicit:
                scores = scores + model.domain_mean[1]
        top = torch.topk(scores, min(topk, len(items)))
        tokens = self.dataset.id2token(self.dataset.iid_field, items[top.indices].numpy())
        return Recommendation(target, [str(t) for t in tokens], top.values.tolist())

    def recommend_from_history(self, items, ratings=None, topk=10, seed=0) -> Recommendation:
        return self.recommend(self.fold_in_aux_feature(items, ratings), topk=topk, seed=seed)

    def history_of(self, user: str) -> tuple[list[str], list[float] | None]:
        """The auxiliary-domain history of a user of the dataset (e.g. a held-out test user)."""
        data = self.dataset._aux_history.inter_feat
        uid = self.dataset.token2id(self.dataset.uid_field, user)
        rows = np.flatnonzero(data[self.dataset.uid_field].numpy() == uid)
        items = self.dataset.id2token(self.dataset.iid_field, data[self.dataset.iid_field][rows])
        ratings = (
            data[self.dataset.rating_field][rows].tolist() if self.dataset.is_explicit else None
        )
        return [str(i) for i in items], ratings
