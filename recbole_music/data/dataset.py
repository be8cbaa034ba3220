"""RecBole dataset of two domains with user roles and the cold-start split.

Reads the atomic files written by ``dataset_prep`` (docs/dataset_format.md): one ``.inter`` with a
``domain`` column (``aux`` / ``target``). It tells models, for every user, their role (overlapping,
side, auxiliary-only) and, after ``build()``, which overlapping users are held out for validation
and test; it gives the auxiliary-domain history of every user (test users included) and the mask
of target-domain items. ``build()`` replaces RecBole's random split by the cold-start split.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from recbole.data.dataset import Dataset
from recbole.utils import set_color

from dataset_prep.layout import AUX, FEATURES_FOLDER, TARGET
from dataset_prep.vector_table import load_vectors
from recbole_music.config import OVERALL_YAML, setting
from recbole_music.data.cold_start_split import split_overlapping_users, split_target_items
from recbole_music.data.feature_store import align_to_dataset


class UserRole(IntEnum):
    NONE = 0  # the padding id 0
    OVERLAP = 1  # interactions in both domains
    SIDE = 2  # target domain only
    AUX_ONLY = 3  # auxiliary domain only


class SplitPart(IntEnum):
    TRAIN = 0
    VALID = 1
    TEST = 2
    DROPPED = 3  # dual cold-start: another user's interaction with a held-out item


class CrossDomainDataset(Dataset):
    def __init__(self, config):
        self.domain_field = setting(config, "DOMAIN_FIELD", OVERALL_YAML)
        self.rating_field = config["RATING_FIELD"]
        super().__init__(config)
        self._check_domains()
        self._derive_roles()

    # -- loading ---------------------------------------------------------------------------
    def _check_domains(self):
        if self.domain_field not in self.field2id_token:
            raise ValueError(
                f"dataset '{self.dataset_name}': the .inter file has no '{self.domain_field}' "
                f"column (aux/target); build the dataset with `python -m dataset_prep build`"
            )
        tokens = set(self.field2id_token[self.domain_field][1:])
        if tokens != {AUX, TARGET}:
            raise ValueError(
                f"dataset '{self.dataset_name}': column '{self.domain_field}' must hold exactly "
                f"'{AUX}' and '{TARGET}', found {sorted(tokens)}"
            )
        self.target_domain_id = int(self.token2id(self.domain_field, TARGET))
        self.aux_domain_id = int(self.token2id(self.domain_field, AUX))

    @property
    def is_explicit(self) -> bool:
        """Explicit feedback (1-5 ratings) when the interactions carry a rating column."""
        return self.rating_field is not None and self.rating_field in self.field2type

    def _domain_rows(self):
        """(user ids, item ids, is-target mask) of all interactions, whatever their format."""
        feat = self.inter_feat  # a DataFrame before build(), an Interaction after

        def column(field):
            return np.asarray(feat[field])

        users, items = column(self.uid_field), column(self.iid_field)
        return users, items, column(self.domain_field) == self.target_domain_id

    def _derive_roles(self):
        users, items, is_target = self._domain_rows()
        has_target = np.bincount(users[is_target], minlength=self.user_num) > 0
        has_aux = np.bincount(users[~is_target], minlength=self.user_num) > 0
        role = np.full(self.user_num, UserRole.NONE, dtype=np.int64)
        role[has_aux & has_target] = UserRole.OVERLAP
        role[has_target & ~has_aux] = UserRole.SIDE
        role[has_aux & ~has_target] = UserRole.AUX_ONLY
        self.user_role = torch.from_numpy(role)

        in_target = np.bincount(items[is_target], minlength=self.item_num) > 0
        in_aux = np.bincount(items[~is_target], minlength=self.item_num) > 0
        both = np.flatnonzero(in_target & in_aux)
        if len(both):
            raise ValueError(
                f"dataset '{self.dataset_name}': {len(both)} item(s) appear in both domains, "
                f"e.g. '{self.id2token(self.iid_field, both[0])}'"
            )
        self.target_item_mask = torch.from_numpy(in_target)
        if not (role == UserRole.OVERLAP).any():
            raise ValueError(
                f"dataset '{self.dataset_name}': no user has interactions in both domains, so "
                f"there is nothing to learn a transfer from or to test on"
            )

    def users_with_role(self, role: UserRole) -> torch.Tensor:
        return torch.nonzero(self.user_role == role).flatten()

    # -- the cold-start split ------------------------------------------------------------
    def _split_users(self):
        """(each user's split part, the split of the overlapping users): overlapping users go
        to train/valid/test by the seeded split, everyone else to train; the parts are also
        kept as ``self.user_split``."""
        overlap = self.users_with_role(UserRole.OVERLAP).numpy()
        tokens = self.id2token(self.uid_field, overlap)
        seed = self.config["split_seed"]
        split = split_overlapping_users(
            tokens,
            cold_ratio=float(self.config["cold_ratio"]),
            valid_ratio=float(setting(self.config, "valid_ratio", OVERALL_YAML)),
            seed=int(self.config["seed"] if seed is None else seed),
        )
        part = np.full(self.user_num, SplitPart.TRAIN, dtype=np.int64)
        if split.test:
            part[self.token2id(self.uid_field, list(split.test))] = SplitPart.TEST
        if split.valid:
            part[self.token2id(self.uid_field, list(split.valid))] = SplitPart.VALID
        self.user_split = torch.from_numpy(part)
        return part, split

    def _split_items(self, is_target, items, split) -> np.ndarray:
        """Each item's split part: TRAIN, or (dual cold-start) TEST / VALID for the target
        items held out for the test / validation users; kept as ``self.item_split``."""
        part = np.full(self.item_num, SplitPart.TRAIN, dtype=np.int64)
        ratio = float(setting(self.config, "cold_item_ratio", OVERALL_YAML))
        if ratio > 0:
            target = np.unique(items[is_target])
            seed = self.config["split_seed"]
            held = split_target_items(
                self.id2token(self.iid_field, target),
                ratio,
                with_valid=bool(split.valid),
                seed=int(self.config["seed"] if seed is None else seed),
            )
            part[self.token2id(self.iid_field, list(held.test))] = SplitPart.TEST
            if held.valid:
                part[self.token2id(self.iid_field, list(held.valid))] = SplitPart.VALID
        self.item_split = torch.from_numpy(part)
        return part

    @property
    def has_cold_items(self) -> bool:
        """Dual cold-start: some target items are unseen in training (after ``build()``)."""
        return bool((self.item_split != SplitPart.TRAIN).any())

    def build(self):
        """Return [train, valid, test] datasets of the cold-start protocol (docs/protocol.md)."""
        self._change_feat_format()
        users, items, is_target = self._domain_rows()
        part, split = self._split_users()
        item_part = self._split_items(is_target, items, split)

        # Held-out users lose only their target interactions; their auxiliary history trains.
        row_part = np.where(is_target, part[users], SplitPart.TRAIN)
        # Dual cold-start: a held-out item stays only in the interactions of the users it is
        # held out for; everyone else's interactions with it are dropped.
        cold = is_target & (item_part[items] != SplitPart.TRAIN)
        row_part[cold & (item_part[items] != part[users])] = SplitPart.DROPPED
        if cold.any():
            self._check_dual_cold_start(row_part, cold, is_target, item_part)
        train_rows = np.flatnonzero(row_part == SplitPart.TRAIN)
        self.train_item_matrix = sp.csr_matrix(
            (np.ones(len(train_rows), dtype=np.float32), (users[train_rows], items[train_rows])),
            shape=(self.user_num, self.item_num),
        )
        aux_rows = np.flatnonzero(~is_target)
        self._aux_history = self.copy(self.inter_feat[torch.from_numpy(aux_rows)])

        self.logger.info(
            set_color("cold-start split", "pink")
            + f": {len(split.train) + len(split.valid) + len(split.test)} overlapping users -> "
            f"{len(split.test)} test "
            f"(cold_ratio={self.config['cold_ratio']}), {len(split.valid)} valid, "
            f"{len(split.train)} train; {len(self.users_with_role(UserRole.SIDE))} side users, "
            f"{len(self.users_with_role(UserRole.AUX_ONLY))} auxiliary-only users"
        )
        return [
            self.copy(self.inter_feat[torch.from_numpy(np.flatnonzero(row_part == p))])
            for p in (SplitPart.TRAIN, SplitPart.VALID, SplitPart.TEST)
        ]

    def _check_dual_cold_start(self, row_part, cold, is_target, item_part):
        ratio = self.config["cold_item_ratio"]
        if not (is_target & (row_part == SplitPart.TRAIN)).any():
            raise ValueError(
                f"cold_item_ratio={ratio} leaves no target interaction in training; lower it"
            )
        for name, p in (("test", SplitPart.TEST), ("validation", SplitPart.VALID)):
            held = int((item_part == p).sum())
            if held and not (cold & (row_part == p)).any():
                raise ValueError(
                    f"cold_item_ratio={ratio}: none of the {held} target items held out for the "
                    f"{name} users has an interaction with them; raise cold_item_ratio or "
                    "cold_ratio"
                )
        self.logger.info(
            set_color("dual cold-start", "pink")
            + f": {int((item_part == SplitPart.TEST).sum())} target items held out for the test "
            f"users ({int((cold & (row_part == SplitPart.TEST)).sum())} test interactions), "
            f"{int((item_part == SplitPart.VALID).sum())} for the validation users "
            f"(cold_item_ratio={ratio}); {int((row_part == SplitPart.DROPPED).sum())} "
            "interactions of other users with them dropped"
        )

    def feature_path(self):
        """``<data_path>/features``: where feature extraction writes its vector tables."""
        return Path(self.dataset_path) / FEATURES_FOLDER

    def load_features(self, table: str, field: str, dtype=None):
        """(vectors [num(field), dim], has_vector mask) of ``features/<table>``, aligned to the
        remapped ids of ``field`` (user_id or item_id), in ``dtype`` (default float32); see
        :mod:`feature_store`."""
        table_file = load_vectors(self.feature_path(), table)
        return align_to_dataset(table_file, self, field, name=table, dtype=dtype or torch.float32)

    def aux_history_item_matrix(self, value_field=None, max_history_len=None):
        """Every user's auxiliary-domain items (test users included), padded like RecBole's
        ``history_item_matrix``: (items [n_users, L], values [n_users, L], lengths [n_users])."""
        if not hasattr(self, "_aux_history"):
            raise RuntimeError("aux_history_item_matrix() is available after build()")
        return self._aux_history.history_item_matrix(value_field, max_history_len)
