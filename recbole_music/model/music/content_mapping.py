"""Interaction vectors for the items that have none, mapped from their content.

An item without training interactions — a new item of the dual cold-start, or one that only
held-out users chose — has a zero interaction vector (:mod:`interaction_vectors`): nothing to
rank it by. Its content vector (title, image) is there, though. A ridge regression fit on the
items that have both, content → interaction vector, gives it the interaction vector its content
predicts: the content-to-collaborative mapping of cold-start item recommenders. The ridge
strength is chosen on a held-out tenth of those items (a fixed permutation: the same data gives
the same vectors); no user's held-out interactions enter.
"""

from __future__ import annotations

import numpy as np
import torch

# ridge strengths, in units of the mean eigenvalue of the centred content Gram matrix
RIDGE_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
HELD_OUT_SHARE = 0.1  # of the items that have both vectors, to choose the strength on


def items_with_training_interactions(dataset) -> np.ndarray:
    """[n_items] bool: the items of at least one training interaction (either domain)."""
    items = np.asarray(dataset.inter_feat[dataset.iid_field])
    return np.bincount(items, minlength=dataset.item_num) > 0


def map_content_to_interactions(
    interaction: torch.Tensor, content: torch.Tensor, seen: np.ndarray, has_content: np.ndarray
) -> tuple[torch.Tensor, dict]:
    """``interaction`` with the rows of unseen items that have content filled by the ridge map
    (padding, id 0, stays zero), and what was done: the number of items mapped and fit on,
    the chosen strength and its held-out R²."""
    y_all = interaction.double().numpy()
    x_all = content.double().numpy()
    has_content = np.asarray(has_content, dtype=bool).copy()
    has_content[0] = False  # the padding item
    fit = np.flatnonzero(seen & has_content)
    fill = np.flatnonzero(~seen & has_content)
    out = interaction.clone()
    report = {"mapped": len(fill), "fit_on": len(fit), "strength": None, "held_out_r2": None}
    if len(fill) == 0 or len(fit) < 10:
        return out, report
    x, y = x_all[fit], y_all[fit]
    order = np.random.default_rng(0).permutation(len(fit))
    n_held = max(1, int(round(HELD_OUT_SHARE * len(fit))))
    held, train = order[:n_held], order[n_held:]
    errors = {a: _held_out_error(x[train], y[train], x[held], y[held], a) for a in RIDGE_GRID}
    best = min(errors, key=errors.get)
    weights, x_mean, y_mean = _ridge(x, y, best)
    out[fill] = torch.from_numpy((x_all[fill] - x_mean) @ weights + y_mean).to(out.dtype)
    report["strength"] = best
    spread = max(float(((y[held] - y[train].mean(0)) ** 2).sum()), 1e-12)
    report["held_out_r2"] = 1.0 - errors[best] / spread
    return out, report


def _ridge(x: np.ndarray, y: np.ndarray, strength: float):
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc
    scale = max(np.trace(gram) / gram.shape[0], 1e-12)
    weights = np.linalg.solve(gram + strength * scale * np.eye(gram.shape[0]), xc.T @ yc)
    return weights, x_mean, y_mean


def _held_out_error(x_train, y_train, x_held, y_held, strength: float) -> float:
    weights, x_mean, y_mean = _ridge(x_train, y_train, strength)
    return float((((x_held - x_mean) @ weights + y_mean - y_held) ** 2).sum())
