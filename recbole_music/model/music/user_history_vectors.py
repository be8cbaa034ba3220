"""User vectors built from the items a user interacted with, for data without review text.

MuSiC reads a user's vector in a domain from an LLM over their reviews there (docs/music.md, Features).
Where there are no reviews (``../shared/data/food_kitchen``) or they are short, the user's
*history* says the same kind of thing: which items they chose and how they rated them. For each
user and domain, over their **training** interactions only (a held-out user's target history is
test information and never appears in a training dataset):

* implicit data: the mean of the frozen item vectors of the user's items;
* explicit data: that mean, the rating-weighted mean ``mean((r - r̄_u) v_i)`` (what they liked
  more than their own average), and their mean rating minus the domain mean (their generosity).
"""

from __future__ import annotations

import torch


def history_vector_dim(item_dim: int, explicit: bool) -> int:
    return 2 * item_dim + 1 if explicit else item_dim


# interactions gathered at once: all of them would gather [interactions, dim] (the paper's
# 2.8M auxiliary ratings of 4,096-dim item vectors: 45 GB)
ROW_CHUNK = 65_536


def _summing_dtype(item_vectors: torch.Tensor) -> torch.dtype:
    return torch.promote_types(item_vectors.dtype, torch.float32)


def _sum_per_user(n_users, users, items, item_vectors, weights=None) -> torch.Tensor:
    """[n_users, dim]: the sum of each user's item vectors (times ``weights``), chunk by chunk,
    in at least float32 (float16 vectors are summed in float32)."""
    dtype = _summing_dtype(item_vectors)
    out = torch.zeros(n_users, item_vectors.shape[1], dtype=dtype)
    for lo in range(0, len(users), ROW_CHUNK):
        vectors = item_vectors[items[lo : lo + ROW_CHUNK]].to(dtype)
        if weights is not None:
            vectors = weights[lo : lo + ROW_CHUNK, None] * vectors
        out.index_add_(0, users[lo : lo + ROW_CHUNK], vectors)
    return out


# the history_vector_scale setting: the mean of the user's n item vectors as it comes; rescaled
# to norm 1 (unit: its direction only); or times sqrt(n) (sqrt: the sum over sqrt(n), the user
# side of the symmetric normalisation D_u^-1/2 R, so a longer history speaks louder)
HISTORY_SCALES = ("mean", "unit", "sqrt")


def _scaled_mean(mean: torch.Tensor, scale: str, counts: torch.Tensor) -> torch.Tensor:
    """``mean`` [..., D] of ``counts`` [..., 1] items each, scaled by ``scale``."""
    if scale not in HISTORY_SCALES:
        raise ValueError(f"history_vector_scale must be one of {HISTORY_SCALES}, not {scale!r}")
    if scale == "sqrt":
        return mean * counts.sqrt()
    if scale == "unit":
        return mean / mean.norm(dim=-1, keepdim=True).clamp(min=1e-12)  # zero rows stay zero
    return mean


def _domain_rows(dataset, target: bool):
    """(row mask, users, items) of the training interactions of one domain."""
    feat = dataset.inter_feat
    rows = (feat[dataset.domain_field] == dataset.target_domain_id) == target
    return rows, feat[dataset.uid_field][rows], feat[dataset.iid_field][rows]


def checked_history_dropout(value) -> float:
    """``history_dropout`` as a float: a number in [0, 1) (a bool or text is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"history_dropout must be a number in [0, 1), got {value!r}")
    return float(value)


def user_history_vectors(
    dataset, item_vectors: torch.Tensor, target: bool, scale: str = "mean"
) -> torch.Tensor:
    """[n_users, history_vector_dim]: each user's vector from their training items of one domain
    (the target domain when ``target``, else the auxiliary one); zeros for users with none.
    ``scale`` (history_vector_scale) rescales the mean part: ``unit`` to norm 1, ``sqrt`` by the
    square root of the user's item count."""
    feat = dataset.inter_feat
    rows, users, items = _domain_rows(dataset, target)
    n_users = dataset.user_num
    dtype = _summing_dtype(item_vectors)
    counts = torch.bincount(users, minlength=n_users).clamp(min=1).to(dtype)[:, None]
    mean = _scaled_mean(_sum_per_user(n_users, users, items, item_vectors) / counts, scale, counts)
    if not dataset.is_explicit:
        return mean
    ratings = feat[dataset.rating_field][rows].to(dtype)
    user_mean = torch.zeros(n_users, dtype=dtype).index_add_(0, users, ratings) / counts[:, 0]
    deviation = ratings - user_mean[users]
    liked = _sum_per_user(n_users, users, items, item_vectors, deviation) / counts
    has_rows = torch.bincount(users, minlength=n_users) > 0
    generosity = torch.where(has_rows, user_mean - ratings.mean(), torch.zeros_like(user_mean))
    return torch.cat([mean, liked, generosity[:, None]], dim=1)


def history_vector(
    item_vectors: torch.Tensor,
    ratings: torch.Tensor | None,
    domain_mean: float = 0.0,
    scale: str = "mean",
) -> torch.Tensor:
    """One user's vector (as :func:`user_history_vectors` builds it) from their items' vectors
    ``[n, D]`` and ratings (``None`` on implicit data) -- a new user at inference time."""
    count = torch.tensor([float(len(item_vectors))], dtype=item_vectors.dtype)
    mean = _scaled_mean(item_vectors.mean(0), scale, count)
    if ratings is None:
        return mean
    ratings = ratings.to(item_vectors)
    liked = ((ratings - ratings.mean())[:, None] * item_vectors).mean(0)
    return torch.cat([mean, liked, (ratings.mean() - domain_mean).view(1)])


def history_rows(dataset, target: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(indptr [n_users + 1], items): each user's training items of one domain, CSR-style."""
    _, users, items = _domain_rows(dataset, target)
    order = torch.argsort(users, stable=True)
    counts = torch.bincount(users, minlength=dataset.user_num)
    indptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
    return indptr, items[order].long()


def dropped_history_vectors(
    ids: torch.Tensor,
    indptr: torch.Tensor,
    items: torch.Tensor,
    item_vectors: torch.Tensor,
    drop: float,
    scale: str,
) -> torch.Tensor:
    """[len(ids), D]: the users' history vectors (implicit data) from a random part of their
    items, each item left out with probability ``drop`` and at least one kept -- the input
    dropout of a denoising autoencoder (history_dropout), so that training meets the short
    histories most cold users bring. Users without items get zeros, as in the full table."""
    device = item_vectors.device  # everything on the vectors' device: no table is copied
    ids, indptr, items = ids.to(device), indptr.to(device), items.to(device)
    starts, lengths = indptr[ids], indptr[ids + 1] - indptr[ids]
    offsets = torch.cumsum(lengths, 0) - lengths  # where each user's rows start in the flat list
    owner = torch.repeat_interleave(torch.arange(len(ids), device=device), lengths)
    position = torch.repeat_interleave(starts - offsets, lengths) + torch.arange(
        len(owner), device=device
    )
    keep = torch.rand(len(owner), device=device) >= drop
    kept = torch.zeros(len(ids), device=device).index_add_(0, owner, keep.float())
    # a user whose every item was dropped keeps one of them, drawn uniformly
    emptied = torch.nonzero((kept == 0) & (lengths > 0)).flatten()
    if len(emptied):
        pick = (torch.rand(len(emptied), device=device) * lengths[emptied]).long()
        keep[offsets[emptied] + pick] = True
        kept[emptied] = 1
    dtype = _summing_dtype(item_vectors)
    sums = torch.zeros(len(ids), item_vectors.shape[1], dtype=dtype, device=device)
    sums.index_add_(0, owner[keep], item_vectors[items[position[keep]]].to(dtype))
    counts = kept.clamp(min=1).to(dtype)[:, None]
    return _scaled_mean(sums / counts, scale, counts)
