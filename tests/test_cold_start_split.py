"""The cold-start split (docs/protocol.md): the pure function and CrossDomainDataset.build()."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import build_split, write_tiny_cross_domain

from recbole_music.data.cold_start_split import split_overlapping_users, split_target_items
from recbole_music.data.dataset import SplitPart, UserRole

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # RecBole's in-place fillna, pandas 2
]

USERS = [f"u{i:03d}" for i in range(40)]


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


# -- the pure function ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "beta", "expected"),
    [
        (40, 0.2, 8),
        (40, 0.5, 20),
        (40, 0.8, 32),
        (5, 0.5, 3),  # 2.5 -> 3 (round half up; Python's round() would give 2)
        (13, 0.5, 7),  # 6.5 -> 7
        (45, 0.5, 23),  # 22.5 -> 23
        (41, 0.2, 8),  # 8.2 -> 8
        (43, 0.2, 9),  # 8.6 -> 9
        (43, 0.8, 34),  # 34.4 -> 34
        (12, 0.8, 10),  # 9.6 -> 10
    ],
)
def test_test_size_is_beta_times_overlap_rounded_half_up(n, beta, expected):
    users = [f"u{i}" for i in range(n)]
    split = split_overlapping_users(users, cold_ratio=beta, valid_ratio=0.0, seed=3)
    assert len(split.test) == expected == _half_up(beta * n)
    assert split.valid == ()
    assert len(split.train) == n - expected


def test_valid_share_is_rounded_half_up_and_parts_partition_the_users():
    users = [f"u{i:02d}" for i in range(25)]
    split = split_overlapping_users(users, cold_ratio=0.2, valid_ratio=0.1, seed=0)
    assert (len(split.test), len(split.valid), len(split.train)) == (5, 3, 17)  # 2.5 -> 3 valid
    parts = [set(split.test), set(split.valid), set(split.train)]
    assert set.union(*parts) == set(users)
    assert sum(map(len, parts)) == len(users)  # disjoint
    for part in (split.test, split.valid, split.train):
        assert list(part) == sorted(part)


def test_same_seed_same_split_other_seed_other_split():
    a = split_overlapping_users(USERS, 0.2, 0.1, seed=11)
    b = split_overlapping_users(USERS, 0.2, 0.1, seed=11)
    assert a == b
    others = {split_overlapping_users(USERS, 0.2, 0.1, seed=s).test for s in range(12, 17)}
    assert a.test not in others
    assert len(others) > 1


def test_split_does_not_depend_on_input_order_or_duplicates():
    reference = split_overlapping_users(USERS, 0.5, 0.1, seed=5)
    shuffled = USERS * 2
    random.Random(1).shuffle(shuffled)
    assert split_overlapping_users(shuffled, 0.5, 0.1, seed=5) == reference
    assert split_overlapping_users(iter(reversed(USERS)), 0.5, 0.1, seed=5) == reference
    assert split_overlapping_users(set(USERS), 0.5, 0.1, seed=5) == reference


def test_split_does_not_depend_on_the_hash_seed():
    # load the module file alone (the package import would pull in torch and RecBole: slow)
    path = Path(__file__).resolve().parent.parent / "recbole_music/data/cold_start_split.py"
    code = (
        "import importlib.util as u, sys;"
        f"spec = u.spec_from_file_location('split', {str(path)!r});"
        "m = u.module_from_spec(spec); sys.modules['split'] = m; spec.loader.exec_module(m);"
        "print(m.split_overlapping_users({f'u{i}' for i in range(30)}, 0.2, 0.1, seed=4).test)"
    )
    outs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            check=True,
        )
        outs.add(proc.stdout)
    assert len(outs) == 1 and "u" in outs.pop()


def test_valid_ratio_zero_gives_no_valid_users():
    split = split_overlapping_users(USERS, 0.2, 0.0, seed=0)
    assert split.valid == ()
    assert len(split.test) + len(split.train) == len(USERS)


@pytest.mark.parametrize("cold_ratio", [0.0, 1.0, -0.2, 1.5, float("nan")])
def test_bad_cold_ratio_raises(cold_ratio):
    with pytest.raises(ValueError, match=r"cold_ratio must be in \(0, 1\)"):
        split_overlapping_users(USERS, cold_ratio, 0.1, seed=0)


@pytest.mark.parametrize("valid_ratio", [-0.1, 1.0, 2.0])
def test_bad_valid_ratio_raises(valid_ratio):
    with pytest.raises(ValueError, match=r"valid_ratio must be in \[0, 1\)"):
        split_overlapping_users(USERS, 0.2, valid_ratio, seed=0)


@pytest.mark.parametrize(
    ("users", "cold", "valid", "words"),
    [
        ([f"u{i}" for i in range(10)], 0.7, 0.4, "got 7 test, -1 training"),  # no training user
        ([f"u{i}" for i in range(10)], 0.8, 0.2, "got 8 test, 0 training"),
        (["a", "b"], 0.1, 0.0, "got 0 test"),  # 0.2 rounds to no test user
        ([], 0.5, 0.0, "cannot split 0 overlapping users"),
    ],
)
def test_impossible_splits_raise_with_counts(users, cold, valid, words):
    with pytest.raises(ValueError, match="need at least one test and one training user") as err:
        split_overlapping_users(users, cold, valid, seed=0)
    assert words in str(err.value)


# -- CrossDomainDataset.build() -------------------------------------------------------------


def _tokens(data, ids) -> set[str]:
    return set(data.id2token(data.uid_field, np.asarray(ids)).tolist())


def _rows(data, part):
    """[(user token, item token, domain token)] of a split part."""
    feat = part.inter_feat
    users = data.id2token(data.uid_field, feat[data.uid_field].numpy())
    items = data.id2token(data.iid_field, feat[data.iid_field].numpy())
    domains = data.id2token(data.domain_field, feat[data.domain_field].numpy())
    return list(zip(users.tolist(), items.tolist(), domains.tolist()))


def _split_users(data, part: SplitPart) -> set[str]:
    return _tokens(data, np.flatnonzero(data.user_split.numpy() == part))


def test_build_holds_out_target_and_keeps_aux_of_held_out_users(tiny_data_root):
    data, (train, valid, test) = build_split()
    test_users, valid_users = (
        _split_users(data, SplitPart.TEST),
        _split_users(data, SplitPart.VALID),
    )
    assert len(test_users) == 8 and len(valid_users) == 4  # 40 overlapping users: 20% and 10%
    assert not test_users & valid_users
    train_rows, valid_rows, test_rows = _rows(data, train), _rows(data, valid), _rows(data, test)
    assert len(train_rows) + len(valid_rows) + len(test_rows) == len(data.inter_feat)

    held_out = test_users | valid_users
    assert not [r for r in train_rows if r[0] in held_out and r[2] == "target"]
    for users, rows in ((test_users, test_rows), (valid_users, valid_rows)):
        assert {r[0] for r in rows} == users
        assert {r[2] for r in rows} == {"target"}
        # each held-out user's aux history (8 items in the fixture) trains
        aux_in_train = [r for r in train_rows if r[0] in users and r[2] == "aux"]
        assert len(aux_in_train) == 8 * len(users)
        assert len(rows) == 8 * len(users)  # and all of its 8 target ratings are held out

    # the training item matrix agrees: no held-out user has a target item in it
    matrix = data.train_item_matrix.toarray() > 0
    target = data.target_item_mask.numpy()
    for user in held_out:
        uid = data.token2id(data.uid_field, user)
        assert not (matrix[uid] & target).any()
        assert (matrix[uid] & ~target).sum() == 8
    # ... while training users keep theirs
    train_overlap = _split_users(data, SplitPart.TRAIN) & _tokens(
        data, data.users_with_role(UserRole.OVERLAP)
    )
    assert len(train_overlap) == 28
    for user in train_overlap:
        assert (matrix[data.token2id(data.uid_field, user)] & target).sum() == 8

    # the aux history handed to models includes the test users'
    items, _, lengths = data.aux_history_item_matrix()
    for user in test_users:
        uid = data.token2id(data.uid_field, user)
        assert int(lengths[uid]) == 8
        assert not target[items[uid, :8].numpy()].any()


def test_side_and_aux_only_users_are_never_held_out(tiny_data_root):
    for seed in (1, 2, 3):
        data, (train, _, _) = build_split(split_seed=seed, cold_ratio=0.8, valid_ratio=0.1)
        roles = {role: _tokens(data, data.users_with_role(role)) for role in UserRole}
        assert {u[0] for u in roles[UserRole.SIDE]} == {"s"} and len(roles[UserRole.SIDE]) == 20
        assert {u[0] for u in roles[UserRole.AUX_ONLY]} == {"x"}
        assert len(roles[UserRole.OVERLAP]) == 40
        held_out = _split_users(data, SplitPart.TEST) | _split_users(data, SplitPart.VALID)
        assert held_out <= roles[UserRole.OVERLAP]
        assert len(held_out) == 32 + 4
        train_users = {r[0] for r in _rows(data, train)}
        assert roles[UserRole.SIDE] | roles[UserRole.AUX_ONLY] <= train_users


@pytest.mark.parametrize(("beta", "expected"), [(0.2, 9), (0.5, 23), (0.8, 36)])
def test_build_test_size_follows_cold_ratio(tiny_data_root, beta, expected):
    write_tiny_cross_domain(tiny_data_root, "tiny45", n_overlap=45, n_side=5, n_aux_only=3)
    data, (_, valid, test) = build_split(dataset="tiny45", cold_ratio=beta, valid_ratio=0.1)
    assert expected == _half_up(beta * 45)
    assert len(_split_users(data, SplitPart.TEST)) == expected
    assert len(test) == 8 * expected
    assert len(_split_users(data, SplitPart.VALID)) == 5  # 4.5 -> 5


def test_build_same_seed_same_split_other_seed_differs(tiny_data_root):
    first, _ = build_split(seed=7)
    again, _ = build_split(seed=7)
    assert _split_users(first, SplitPart.TEST) == _split_users(again, SplitPart.TEST)
    assert _split_users(first, SplitPart.VALID) == _split_users(again, SplitPart.VALID)
    other, _ = build_split(seed=8)
    assert _split_users(first, SplitPart.TEST) != _split_users(other, SplitPart.TEST)
    # split_seed overrides seed for the split only
    pinned, _ = build_split(seed=8, split_seed=7)
    assert _split_users(pinned, SplitPart.TEST) == _split_users(first, SplitPart.TEST)


def test_build_does_not_depend_on_row_order_of_the_inter_file(tiny_data_root):
    source = tiny_data_root / "tiny"
    shuffled = tiny_data_root / "tiny_shuffled"
    shuffled.mkdir()
    header, *lines = (source / "tiny.inter").read_text().splitlines()
    random.Random(0).shuffle(lines)
    (shuffled / "tiny_shuffled.inter").write_text("\n".join([header, *lines]) + "\n")
    (shuffled / "tiny_shuffled.yaml").write_text((source / "tiny.yaml").read_text())

    data, (_, _, test) = build_split()
    data_s, (_, _, test_s) = build_split(dataset="tiny_shuffled")
    # internal ids differ (RecBole numbers tokens in order of appearance) ...
    assert not np.array_equal(
        data.id2token(data.uid_field, np.arange(1, 10)),
        data_s.id2token(data_s.uid_field, np.arange(1, 10)),
    )
    # ... the split of user tokens does not
    for part in SplitPart:
        assert _split_users(data, part) == _split_users(data_s, part)
    assert sorted(_rows(data, test)) == sorted(_rows(data_s, test_s))


def test_build_with_valid_ratio_zero_gives_an_empty_valid_set(tiny_data_root):
    data, (train, valid, test) = build_split(valid_ratio=0.0)
    assert len(valid) == 0
    assert _split_users(data, SplitPart.VALID) == set()
    assert len(train) + len(test) == len(data.inter_feat)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cold_ratio": 0.0}, r"cold_ratio must be in \(0, 1\), got 0.0"),
        ({"cold_ratio": 1.0}, r"cold_ratio must be in \(0, 1\)"),
        ({"valid_ratio": -0.5}, r"valid_ratio must be in \[0, 1\)"),
        ({"cold_ratio": 0.6, "valid_ratio": 0.5}, r"cannot split 40 overlapping users"),
    ],
)
def test_build_rejects_bad_ratios(tiny_data_root, overrides, message):
    from conftest import make_config

    from recbole_music.data.dataset import CrossDomainDataset

    data = CrossDomainDataset(make_config(**overrides))
    with pytest.raises(ValueError, match=message):
        data.build()


# -- dual cold-start: held-out target items ---------------------------------------------------


def test_held_out_items_are_seeded_disjoint_and_independent_of_order():
    items = [f"t{i:03d}" for i in range(50)]
    a = split_target_items(items, 0.2, with_valid=True, seed=3)
    assert (len(a.test), len(a.valid)) == (10, 10) and not set(a.test) & set(a.valid)
    assert split_target_items(reversed(items), 0.2, with_valid=True, seed=3) == a
    assert split_target_items(items, 0.2, with_valid=True, seed=4) != a
    assert split_target_items(items, 0.2, with_valid=False, seed=3).valid == ()
    none = split_target_items(items, 0.0, with_valid=True, seed=3)
    assert (none.test, none.valid) == ((), ())


@pytest.mark.parametrize(
    ("n", "ratio", "words"),
    [(10, 0.5, "got 5 held out, 0 for training"), (3, 0.1, "got 0 held out"), (5, 1.0, "[0, 1)")],
)
def test_impossible_item_hold_outs_raise(n, ratio, words):
    with pytest.raises(ValueError) as err:
        split_target_items([f"t{i}" for i in range(n)], ratio, with_valid=True, seed=0)
    assert words in str(err.value)


def _item_tokens(data, part: SplitPart) -> set[str]:
    ids = np.flatnonzero(data.item_split.numpy() == part)
    return set(data.id2token(data.iid_field, ids).tolist())


def test_dual_cold_start_items_are_unseen_in_training_and_kept_for_their_users(tiny_data_root):
    plain, (plain_train, plain_valid, plain_test) = build_split()
    data, (train, valid, test) = build_split(cold_item_ratio=0.2)
    # the users' split does not move when items are held out
    for part in SplitPart.TRAIN, SplitPart.VALID, SplitPart.TEST:
        assert _split_users(data, part) == _split_users(plain, part)
    cold_test, cold_valid = _item_tokens(data, SplitPart.TEST), _item_tokens(data, SplitPart.VALID)
    assert len(cold_test) == len(cold_valid) == 5  # 20 % of the 25 target items, each
    assert data.has_cold_items and not plain.has_cold_items
    train_rows, valid_rows, test_rows = _rows(data, train), _rows(data, valid), _rows(data, test)
    assert not {r[1] for r in train_rows} & (cold_test | cold_valid)
    matrix = data.train_item_matrix.toarray()
    for item in cold_test | cold_valid:
        assert matrix[:, data.token2id(data.iid_field, item)].sum() == 0
    assert not {r[1] for r in valid_rows} & cold_test
    assert not {r[1] for r in test_rows} & cold_valid
    # the held-out users keep every interaction with their own held-out items and warm ones
    expected_test = [r for r in _rows(plain, plain_test) if r[1] not in cold_valid]
    assert sorted(test_rows) == sorted(expected_test)
    assert {r[1] for r in test_rows} & cold_test
    expected_valid = [r for r in _rows(plain, plain_valid) if r[1] not in cold_test]
    assert sorted(valid_rows) == sorted(expected_valid)
    # other users' interactions with held-out items are gone, nothing else
    plain_train_rows = _rows(plain, plain_train)
    assert sorted(train_rows) == sorted(
        r for r in plain_train_rows if r[1] not in cold_test | cold_valid
    )
    again, _ = build_split(cold_item_ratio=0.2)
    assert _item_tokens(again, SplitPart.TEST) == cold_test


def test_a_hold_out_that_leaves_no_test_interaction_is_refused(tiny_data_root):
    with pytest.raises(ValueError, match="cold_item_ratio=0.9"):
        build_split(cold_item_ratio=0.9)


def test_sequential_protocol_refuses_held_out_items(seq_root):
    from conftest import make_config

    from recbole_music.data.sequence_dataset import SequentialCrossDomainDataset

    config = make_config("LLMEMF", "tiny_seq", cold_item_ratio=0.2)
    with pytest.raises(ValueError, match="set cold_item_ratio=0"):
        SequentialCrossDomainDataset(config).build()
