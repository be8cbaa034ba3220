"""The cold-start user split (docs/protocol.md), as a pure function over user ids.

β (``cold_ratio``) of the overlapping users are held out: their target-domain interactions are the
test set and nothing of them in the target domain is trained on. An optional ``valid_ratio`` of
the overlapping users is held out the same way for model selection. The permutation is drawn with
a fixed seed over the *sorted* user list, so it does not depend on file order or hash seeds.
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
