"""The per-domain base matrix factorisation of the mapping baselines, pretrained once per split.

EMCDR, SSCDR, LACDR, PTUPCDR and DiffCDR all start, as their papers do, from latent factors
learned separately in each domain: a source-domain MF on every auxiliary interaction (held-out
users' included — the protocol lets training see them) and a target-domain MF on the target
training interactions (side and training-overlap users; never a held-out user's). Only the
mapping differs between the methods, so the two MFs are trained **once per split** and cached:
``<checkpoint_dir>/base_mf/<dataset>-<hash>.pth``, written atomically, keyed by a hash of
everything that determines them (the training interactions, the split settings, the embedding
size and the ``base_mf_*`` hyper-parameters). A later baseline on the same split loads it.

The MF of a domain (our choice, the same form as ``TargetMF``):

* ratings: ``r = mu + b_u + b_i + <p_u, q_i>``, MSE + L2 on the factors of the batch;
* implicit data: ``s = b_i + <p_u, q_i>``, BCE of each interaction against ``base_mf_num_negatives``
  items of the same domain drawn uniformly.

What the baselines map is the *user vector* ``u = [p_u, b_u]`` (``p_u`` alone on implicit data)
against the *item vector* ``v = [q_i, 1]``, so that ``r = offset_i + <u, v>`` with
``offset_i = mu + b_i``: a mapped user vector carries the user's target bias with it. Its size is
:func:`vector_size` (``d + 1`` on ratings, ``d`` on implicit data).

Training is seeded from the split seed with its own generator, so the cached MFs do not depend
on which baseline happened to train them first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbole_music.config import BASE_MF_YAML, OVERALL_YAML, by_feedback, setting
from recbole_music.data.dataset import SplitPart

logger = logging.getLogger()

#: bump when the MF or its training changes, so old caches are not reused
BASE_MF_VERSION = 1
#: the config keys of the base MF (each mapping baseline's YAML lists them, with the same values)
BASE_MF_KEYS = (
    "base_mf_epochs",
    "base_mf_learning_rate",
    "base_mf_batch_size",
    "base_mf_reg_weight",
    "base_mf_init_std",
    "base_mf_num_negatives",
)


def vector_size(dim: int, explicit: bool) -> int:
    """Width of the user/item vectors the baselines map: ``d + 1`` (with the user bias) on ratings."""
    return dim + 1 if explicit else dim


class DomainMF(nn.Module):
    """Biased MF of one domain (see the module docstring)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        explicit: bool,
        init_std: float,
        global_mean: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.explicit = explicit
        self.user_factors = nn.Parameter(torch.randn(n_users, dim, generator=generator) * init_std)
        self.item_factors = nn.Parameter(torch.randn(n_items, dim, generator=generator) * init_std)
        self.user_bias = nn.Parameter(torch.zeros(n_users))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        score = (self.user_factors[users] * self.item_factors[items]).sum(-1) + self.item_bias[
            items
        ]
        if self.explicit:
            score = score + self.global_mean + self.user_bias[users]
        return score

    @torch.no_grad()
    def user_vectors(self) -> torch.Tensor:
        if self.explicit:
            return torch.cat([self.user_factors, self.user_bias[:, None]], dim=1).clone()
        return self.user_factors.clone()

    @torch.no_grad()
    def item_vectors(self) -> torch.Tensor:
        if self.explicit:
            ones = torch.ones_like(self.item_bias)[:, None]
            return torch.cat([self.item_factors, ones], dim=1).clone()
        return self.item_factors.clone()

    @torch.no_grad()
    def item_offsets(self) -> torch.Tensor:
        offset = self.item_bias.clone()
        return offset + self.global_mean if self.explicit else offset


def settings_of(config, explicit: bool) -> dict:
    """The ``base_mf_*`` hyper-parameters of ``config`` (properties/base_mf.yaml), resolved for
    explicit or implicit feedback."""
    out = {}
    for key in BASE_MF_KEYS:
        out[key] = by_feedback(setting(config, key, BASE_MF_YAML), explicit, key)
    out["base_mf_epochs"] = int(out["base_mf_epochs"])
    out["base_mf_batch_size"] = int(out["base_mf_batch_size"])
    out["base_mf_num_negatives"] = int(out["base_mf_num_negatives"])
    for key in ("base_mf_learning_rate", "base_mf_reg_weight", "base_mf_init_std"):
        out[key] = float(out[key])
    return out


def train_domain_mf(
    domain: str,
    users: torch.Tensor,
    items: torch.Tensor,
    ratings: torch.Tensor | None,
    candidate_items: torch.Tensor,
    n_users: int,
    n_items: int,
    dim: int,
    settings: dict,
    seed: int,
    device="cpu",
) -> DomainMF:
    """Fit the MF of one domain on its (user, item[, rating]) interactions."""
    explicit = ratings is not None
    generator = torch.Generator().manual_seed(int(seed))
    mean = float(ratings.double().mean()) if explicit and len(ratings) else 0.0
    mf = DomainMF(
        n_users, n_items, dim, explicit, settings["base_mf_init_std"], mean, generator
    ).to(device)
    optimizer = torch.optim.Adam(mf.parameters(), lr=settings["base_mf_learning_rate"])
    reg, k = settings["base_mf_reg_weight"], settings["base_mf_num_negatives"]
    batch_size, epochs = settings["base_mf_batch_size"], settings["base_mf_epochs"]
    users, items = users.to(device), items.to(device)
    if explicit:
        ratings = ratings.float().to(device)
    candidate_items = candidate_items.to(device)
    n = len(users)
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            u, i = users[idx], items[idx]
            if explicit:
                loss = F.mse_loss(mf.score(u, i), ratings[idx])
            else:
                pick = torch.randint(len(candidate_items), (len(idx) * k,), generator=generator)
                neg_u, neg_i = u.repeat_interleave(k), candidate_items[pick.to(device)]
                logits = torch.cat([mf.score(u, i), mf.score(neg_u, neg_i)])
                labels = torch.cat([torch.ones(len(u)), torch.zeros(len(neg_u))]).to(logits)
                loss = F.binary_cross_entropy_with_logits(logits, labels)
            l2 = mf.user_factors[u].pow(2).sum(-1) + mf.item_factors[i].pow(2).sum(-1)
            loss = loss + reg * l2.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        if not torch.isfinite(torch.tensor(total)):
            raise FloatingPointError(
                f"base MF ({domain} domain): loss is {total} at epoch {epoch}: lower "
                f"base_mf_learning_rate"
            )
        if epoch == epochs - 1 or epoch % 10 == 0:
            logger.info(f"base MF ({domain} domain) epoch {epoch}: train loss {total / n:.4f}")
    return mf


@dataclass
class BaseVectors:
    """The pretrained vectors of both domains (CPU tensors) and where they came from."""

    src_user: torch.Tensor  # [n_users, D]
    src_item: torch.Tensor  # [n_items, D]
    src_offset: torch.Tensor  # [n_items]
    tgt_user: torch.Tensor
    tgt_item: torch.Tensor
    tgt_offset: torch.Tensor
    origin: str = "trained"  # "trained" or "cache"
    path: str | None = None


def _fingerprint(dataset) -> str:
    """sha256 of the training interactions (users, items, domains, ratings) and table sizes."""
    feat = dataset.inter_feat
    digest = hashlib.sha256()
    digest.update(f"{dataset.user_num}:{dataset.item_num}".encode())
    fields = [dataset.uid_field, dataset.iid_field, dataset.domain_field]
    if dataset.is_explicit:
        fields.append(dataset.rating_field)
    for field in fields:
        digest.update(np.ascontiguousarray(feat[field].numpy()).tobytes())
    return digest.hexdigest()


def cache_key(config, dataset) -> dict:
    """Everything the two MFs depend on (``dataset`` is the training split)."""
    split_seed = config["split_seed"]
    return {
        "version": BASE_MF_VERSION,
        "dataset": str(config["dataset"]),
        "interactions": _fingerprint(dataset),
        "split_seed": int(config["seed"] if split_seed is None else split_seed),
        "cold_ratio": float(config["cold_ratio"]),
        "valid_ratio": float(setting(config, "valid_ratio", OVERALL_YAML)),
        "embedding_size": int(config["embedding_size"]),
        "explicit": bool(dataset.is_explicit),
        **settings_of(config, dataset.is_explicit),
    }


def cache_path(config, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(config["checkpoint_dir"]) / "base_mf" / f"{key['dataset']}-{digest}.pth"


def _save_atomic(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _domain_interactions(dataset, target: bool):
    feat = dataset.inter_feat
    rows = (feat[dataset.domain_field] == dataset.target_domain_id) == target
    users, items = feat[dataset.uid_field][rows], feat[dataset.iid_field][rows]
    ratings = feat[dataset.rating_field][rows] if dataset.is_explicit else None
    return users, items, ratings


def train_base_vectors(config, dataset) -> BaseVectors:
    """Train the source- and target-domain MFs on the training split ``dataset``."""
    settings, dim = settings_of(config, dataset.is_explicit), int(config["embedding_size"])
    key = cache_key(config, dataset)
    seed = key["split_seed"]
    target_users, target_items, target_ratings = _domain_interactions(dataset, target=True)
    held_out = dataset.user_split[target_users] != SplitPart.TRAIN
    if held_out.any():
        raise RuntimeError(
            "base MF: the target-domain training interactions include held-out (valid/test) "
            "users; the base MF must be trained on the training split only"
        )
    aux_users, aux_items, aux_ratings = _domain_interactions(dataset, target=False)
    target_pool = torch.nonzero(dataset.target_item_mask).flatten()
    aux_pool = torch.unique(aux_items)
    logger.info(
        f"base MF: training source ({len(aux_users)} interactions) and target "
        f"({len(target_users)} interactions) MFs, {settings}"
    )
    common = {
        "n_users": dataset.user_num,
        "n_items": dataset.item_num,
        "dim": dim,
        "settings": settings,
        "device": config["device"],
    }
    src = train_domain_mf(
        "source", aux_users, aux_items, aux_ratings, aux_pool, seed=seed, **common
    )
    tgt = train_domain_mf(
        "target", target_users, target_items, target_ratings, target_pool, seed=seed + 1, **common
    )
    return BaseVectors(
        src_user=src.user_vectors().cpu(),
        src_item=src.item_vectors().cpu(),
        src_offset=src.item_offsets().cpu(),
        tgt_user=tgt.user_vectors().cpu(),
        tgt_item=tgt.item_vectors().cpu(),
        tgt_offset=tgt.item_offsets().cpu(),
    )


_FIELDS = ("src_user", "src_item", "src_offset", "tgt_user", "tgt_item", "tgt_offset")


def load_or_train_base_vectors(config, dataset) -> BaseVectors:
    """The cached base MFs of this split when there are any, else train (and cache) them.

    ``base_mf_cache: False`` trains every time and writes nothing.
    """
    key = cache_key(config, dataset)
    use_cache = bool(setting(config, "base_mf_cache", BASE_MF_YAML))
    path = cache_path(config, key)
    if use_cache and path.is_file():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated or foreign file: retrain over it
            logger.warning(f"base MF: cannot read cache {path} ({error}); retraining")
        else:
            if payload.get("key") == key:
                logger.info(f"base MF: loaded from cache {path}")
                tensors = {name: payload[name] for name in _FIELDS}
                return BaseVectors(**tensors, origin="cache", path=str(path))
            logger.warning(f"base MF: cache {path} has another key; retraining")
    base = train_base_vectors(config, dataset)
    if use_cache:
        payload = {"key": key, **{name: getattr(base, name) for name in _FIELDS}}
        _save_atomic(payload, path)
        base.path = str(path)
        logger.info(f"base MF: saved to {path} (reused by later baselines on this split)")
    return base
