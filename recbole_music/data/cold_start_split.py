"""The cold-start split (docs/protocol.md), as pure functions over user and item ids.

β (``cold_ratio``) of the overlapping users are held out: their target-domain interactions are the
test set and nothing of them in the target domain is trained on. An optional ``valid_ratio`` of
the overlapping users is held out the same way for model selection. The permutation is drawn with
a fixed seed over the *sorted* user list, so it does not depend on file order or hash seeds.

Dual cold-start (``cold_item_ratio`` > 0): a share of the target items is held out for the test
users and another share of the same size for the validation users; the dataset drops every
other interaction with them, so they are unseen in training.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UserSplit:
    test: tuple[str, ...]
    valid: tuple[str, ...]
    train: tuple[str, ...]


def _share(ratio: float, n: int) -> int:
    return int(math.floor(ratio * n + 0.5))  # round half up, not banker's rounding


def split_overlapping_users(
    overlapping_users: Iterable[str], cold_ratio: float, valid_ratio: float, seed: int
) -> UserSplit:
    users = sorted(set(overlapping_users))
    n = len(users)
    if not 0.0 < cold_ratio < 1.0:
        raise ValueError(f"cold_ratio must be in (0, 1), got {cold_ratio}")
    if not 0.0 <= valid_ratio < 1.0:
        raise ValueError(f"valid_ratio must be in [0, 1), got {valid_ratio}")
    n_test, n_valid = _share(cold_ratio, n), _share(valid_ratio, n)
    if n_test < 1 or n - n_test - n_valid < 1:
        raise ValueError(
            f"cannot split {n} overlapping users with cold_ratio={cold_ratio} and "
            f"valid_ratio={valid_ratio}: need at least one test and one training user "
            f"(got {n_test} test, {n - n_test - n_valid} training)"
        )
    order = np.random.default_rng(seed).permutation(n)
    picked = [users[i] for i in order]
    return UserSplit(
        test=tuple(sorted(picked[:n_test])),
        valid=tuple(sorted(picked[n_test : n_test + n_valid])),
        train=tuple(sorted(picked[n_test + n_valid :])),
    )


@dataclass(frozen=True)
class ItemSplit:
    test: tuple[str, ...]  # target items only the test users' interactions keep
    valid: tuple[str, ...]  # target items only the validation users' interactions keep


def split_target_items(
    target_items: Iterable[str], cold_item_ratio: float, with_valid: bool, seed: int
) -> ItemSplit:
    """Hold out ``cold_item_ratio`` of the target items for test users (and as many for
    validation users when ``with_valid``): a seeded permutation of the sorted ids, drawn from
    its own stream so that the user split does not change when items are held out."""
    items = sorted(set(target_items))
    if not 0.0 <= cold_item_ratio < 1.0:
        raise ValueError(f"cold_item_ratio must be in [0, 1), got {cold_item_ratio}")
    n = len(items)
    n_test = _share(cold_item_ratio, n)
    n_valid = n_test if with_valid else 0
    if cold_item_ratio > 0 and (n_test < 1 or n - n_test - n_valid < 1):
        raise ValueError(
            f"cannot hold out cold_item_ratio={cold_item_ratio} of {n} target items"
            f"{' twice (test and validation)' if with_valid else ''}: need at least one held-out "
            f"item and one target item left for training (got {n_test} held out, "
            f"{n - n_test - n_valid} for training)"
        )
    order = np.random.default_rng([seed, 1]).permutation(n)
    picked = [items[i] for i in order]
    return ItemSplit(
        test=tuple(sorted(picked[:n_test])),
        valid=tuple(sorted(picked[n_test : n_test + n_valid])),
    )
