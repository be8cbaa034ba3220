"""Cross-domain *sequential* data: each user's interleaved history in time order, next-item
examples, and the leave-last-out split of the CDSR literature.

Reads the same atomic files as :class:`CrossDomainDataset` (one ``.inter`` with a ``domain``
column). A user's interactions of both domains, sorted by ``TIME_FIELD`` (real timestamps, or the
order positions that ``dataset_prep`` writes as timestamps for CSV/TSV sources; ties keep file
order), form the *merged* sequence; the target- and auxiliary-domain sequences are its two
sub-sequences (:func:`domain_subsequences`, which models apply to a batch).

``build()`` returns ``[train, valid, test]`` datasets whose rows are next-item examples in
RecBole's sequential format — ``item_id_list`` (the most recent ``MAX_ITEM_LIST_LENGTH`` items,
left-aligned, zero-padded), ``item_length`` and the next item ``item_id`` (its ``domain`` and
``timestamp`` beside it) — so RecBole's sequential models (SASRec, GRU4Rec, ...) and ours train
on identical examples.

The split (C2DSR-style, on the same seeded user split as the cold-start protocol):

* held-out users — ``cold_ratio`` (test) and ``valid_ratio`` (validation) of the *overlapping*
  users. Each gives ONE example: the label is their last target-domain item, the input everything
  (both domains) before it. Auxiliary items after that label are future and never seen. A user
  whose last target item comes first (empty input) cannot be scored and is dropped, counted in the
  log. With ``heldout_prefix_in_train: True`` the held-out users' earlier positions also train
  (classic leave-one-out); by default they do not (users disjoint, as in C2DSR);
* training users — the other users of the roles listed in ``seq_train_roles`` (overlap, side,
  aux_only): one example per position 2..n of their merged sequence, whatever the domain of the
  next item (a model may train only on target labels, see LLMEMF's ``aux_loss_weight``).
  A sequence shorter than 2 gives no example; users with no target-domain item give only
  auxiliary-label examples. Both are counted in the log.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType, set_color

from dataset_prep.layout import AUX, TARGET
from recbole_music.config import OVERALL_YAML, SEQUENTIAL_YAML, setting
from recbole_music.data.dataset import CrossDomainDataset, SplitPart, UserRole

ROLE_NAMES = {"overlap": UserRole.OVERLAP, "side": UserRole.SIDE, "aux_only": UserRole.AUX_ONLY}


def domain_subsequences(item_seq, item_len, is_target_item):
    """Split a batch of merged sequences into its two domain sub-sequences.

    ``item_seq`` [B, L] left-aligned item ids, ``item_len`` [B] lengths, ``is_target_item``
    [n_items] bool. Returns ``(target_seq, target_len, aux_seq, aux_len)``, each sequence [B, L],
    left-aligned, in the original order, zero-padded. Positions at or after ``item_len`` are
    padding whatever ids they hold.
    """
    batch, length = item_seq.shape
    pos = torch.arange(length, device=item_seq.device).expand(batch, length)
    valid = pos < item_len.view(-1, 1)
    is_target = is_target_item[item_seq] & valid
    is_aux = ~is_target_item[item_seq] & valid

    def compact(mask):
        order = torch.where(mask, pos, pos + length).argsort(dim=1)
        n = mask.sum(dim=1)
        out = item_seq.gather(1, order).masked_fill(pos >= n.view(-1, 1), 0)
        return out, n

    target_seq, target_len = compact(is_target)
    aux_seq, aux_len = compact(is_aux)
    return target_seq, target_len, aux_seq, aux_len


class SequentialCrossDomainDataset(CrossDomainDataset):
    def __init__(self, config):
        self.max_item_list_len = int(config["MAX_ITEM_LIST_LENGTH"])
        self.item_list_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
        self.item_list_length_field = config["ITEM_LIST_LENGTH_FIELD"]
        if self.max_item_list_len < 1:
            raise ValueError(f"MAX_ITEM_LIST_LENGTH must be >= 1, got {self.max_item_list_len}")
        super().__init__(config)

    # -- the users' merged sequences ----------------------------------------------------------
    def _ordered_rows(self):
        """(row order, users, items, is-target) with each user's rows contiguous and in time
        order; ties (and data without a time column) keep the file order."""
        users, items, is_target = self._domain_rows()
        rows = np.arange(len(users))
        time_field = self.time_field
        if time_field is not None and time_field in self.field2type:
            times = np.asarray(self.inter_feat[time_field], dtype=np.float64)
            order = np.lexsort((rows, times, users))
        else:
            self.logger.warning(
                set_color("no time column", "red")
                + f": dataset '{self.dataset_name}' has no '{time_field}' field; sequences follow "
                "the order of the .inter file"
            )
            order = np.lexsort((rows, users))
        return order, users[order], items[order], is_target[order]

    def user_sequence(self, user_token: str):
        """(item tokens, domain tokens) of one user's merged sequence, in time order."""
        order, users, items, is_target = self._ordered_rows()
        uid = self.token2id(self.uid_field, user_token)
        mine = users == uid
        return (
            list(self.id2token(self.iid_field, items[mine])),
            [TARGET if t else AUX for t in is_target[mine]],
        )

    # -- next-item examples and the leave-last-out split ----------------------------------------
    def build(self):
        if float(setting(self.config, "cold_item_ratio", OVERALL_YAML)) > 0:
            raise ValueError(
                "cold_item_ratio (dual cold-start) is a protocol of the cold-start models; the "
                "sequential protocol's labels are each user's last item: set cold_item_ratio=0"
            )
        self.item_split = torch.zeros(self.item_num, dtype=torch.long)  # every item seen
        self._change_feat_format()
        order, users, items, is_target = self._ordered_rows()
        n = len(users)
        starts_mask = np.r_[True, users[1:] != users[:-1]]
        starts = np.flatnonzero(starts_mask)
        seq_start = np.repeat(starts, np.diff(np.r_[starts, n]))
        position = np.arange(n) - seq_start  # index of each row within its user's sequence
        lengths = np.bincount(users, minlength=self.user_num)

        part, _ = self._split_users()
        role = self.user_role.numpy()
        train_roles = self._train_roles()

        # the label row of each held-out user: their last target-domain interaction
        last_target = np.full(self.user_num, -1, dtype=np.int64)
        target_rows = np.flatnonzero(is_target)
        last_target[users[target_rows]] = target_rows  # rows ascend: the last write wins
        heldout = part != SplitPart.TRAIN
        label_pos = np.where(last_target >= 0, position[np.maximum(last_target, 0)], -1)

        # training examples: positions >= 1 of training users (of the chosen roles), and, if
        # asked, positions 1..label-1 of held-out users
        row_users = users
        train_user = (~heldout) & np.isin(role, train_roles)
        is_train_row = train_user[row_users] & (position >= 1)
        if self.config["heldout_prefix_in_train"]:
            is_train_row |= heldout[row_users] & (position >= 1) & (position < label_pos[row_users])
        train_rows = np.flatnonzero(is_train_row)

        parts = {SplitPart.TRAIN: train_rows}
        dropped_empty = {}
        for p in (SplitPart.VALID, SplitPart.TEST):
            uids = np.flatnonzero(part == p)
            rows = last_target[uids]
            empty = position[rows] < 1  # nothing before the label: no input to score from
            dropped_empty[p] = int(empty.sum())
            parts[p] = np.sort(rows[~empty])

        self._log_build(lengths, role, part, train_user, train_rows, is_target, dropped_empty)
        feat = self.inter_feat[torch.from_numpy(order)]
        self._add_list_field_properties()
        return [self.copy(self._examples(feat, items, seq_start, parts[p])) for p in parts]

    def _train_roles(self) -> list[int]:
        names = setting(self.config, "seq_train_roles", SEQUENTIAL_YAML)
        if isinstance(names, str):
            names = [names]
        unknown = [r for r in names if r not in ROLE_NAMES]
        if unknown:
            raise ValueError(
                f"seq_train_roles: unknown role(s) {unknown}; use any of {list(ROLE_NAMES)}"
            )
        return [int(ROLE_NAMES[r]) for r in names]

    def _examples(self, feat, items, seq_start, rows) -> Interaction:
        """Rows ``rows`` of the ordered interactions as next-item examples."""
        length = self.max_item_list_len
        rows = np.asarray(rows, dtype=np.int64)
        n_prev = np.minimum(rows - seq_start[rows], length)
        j = np.arange(length)
        valid = j[None, :] < n_prev[:, None]
        src = np.where(valid, rows[:, None] - n_prev[:, None] + j[None, :], 0)
        item_list = np.where(valid, items[src], 0)
        out = feat[torch.from_numpy(rows)]
        out.update(
            Interaction(
                {
                    self.item_list_field: torch.from_numpy(item_list).long(),
                    self.item_list_length_field: torch.from_numpy(n_prev).long(),
                }
            )
        )
        return out

    def _add_list_field_properties(self):
        self.set_field_property(
            self.item_list_field,
            FeatureType.TOKEN_SEQ,
            FeatureSource.INTERACTION,
            self.max_item_list_len,
        )
        self.set_field_property(
            self.item_list_length_field, FeatureType.TOKEN, FeatureSource.INTERACTION, 1
        )

    def _log_build(self, lengths, role, part, train_user, train_rows, is_target, dropped_empty):
        users = np.arange(1, self.user_num)  # 0 is padding
        short = int(((lengths[users] < 2) & train_user[users]).sum())
        no_target = int(((role[users] == UserRole.AUX_ONLY) & train_user[users]).sum())
        n_target_labels = int(is_target[train_rows].sum())
        self.logger.info(
            set_color("sequential split", "pink")
            + f": leave-last-out for {int((part == SplitPart.TEST).sum())} test and "
            f"{int((part == SplitPart.VALID).sum())} valid overlapping users "
            f"(cold_ratio={self.config['cold_ratio']}, valid_ratio={self.config['valid_ratio']}): "
            f"label = their last target item, input = the {self.max_item_list_len} items before "
            f"it; {len(train_rows)} training examples ({n_target_labels} with a target label) "
            f"from {int(train_user[users].sum())} training users"
            + (
                ", held-out users' earlier items included"
                if self.config["heldout_prefix_in_train"]
                else ""
            )
        )
        if short:
            self.logger.info(f"{short} training user(s) have fewer than 2 interactions: no example")
        if no_target:
            self.logger.info(
                f"{no_target} training user(s) have no target-domain item: auxiliary-label "
                "examples only"
            )
        for p, count in dropped_empty.items():
            if count:
                self.logger.warning(
                    f"{count} {SplitPart(p).name.lower()} user(s) dropped: their last target "
                    "item is their first interaction, nothing precedes it to predict from"
                )
