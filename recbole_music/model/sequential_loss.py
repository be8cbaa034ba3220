"""The training objective of cross-domain sequential models: one softmax for every model.

A sequential model run through the plugin learns the next item of a merged two-domain sequence
and is evaluated on the next *target* item ranked among the target items. Left alone, RecBole's
SASRec and GRU4Rec (``loss_type: CE``) spread every example's softmax over all items of both
domains and the padding id, while LLMEMF's runs over the items of the label's domain — two
objectives, and two costs per epoch. Two settings (``properties/sequential.yaml``) make it one
objective for all models that expose their item table:

* ``sequential_softmax: domain`` — cross-entropy of the label among the items of its own domain
  (a target label among target items, an auxiliary one among auxiliary items); ``all`` — among
  every item (padding excluded).
* ``sequential_negatives: K`` — with K > 0 the full softmax is replaced by a *sampled* one: the
  label against K items drawn uniformly (with replacement) from the same candidates once per
  batch and shared by its examples; a drawn item equal to an example's label is masked. The
  output layer then costs B×K instead of B×|items| per batch. Uniform draws need no correction
  term: every candidate has the same chance.

RecBole's own sequential models get the objective through :func:`training_objective` (their
``forward(item_seq, item_seq_len)`` state against ``item_embedding``); a model with its own
two-domain objective (LLMEMF) reads the same settings itself; any other model keeps its own
``calculate_loss`` and the log says so.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recbole_music.config import setting

logger = logging.getLogger(__name__)

SOFTMAXES = ("domain", "all")


def domain_cross_entropy(states, table, labels, candidates, position, negatives: int):
    """Mean cross-entropy of ``labels`` (item ids) among ``candidates`` (item ids).

    ``states`` [B, d] score ``table`` rows by dot product; ``position[item]`` is the column of an
    item among ``candidates``. ``negatives`` > 0: the sampled softmax described above.
    """
    if negatives <= 0:
        return F.cross_entropy(states @ table[candidates].T, position[labels])
    drawn = candidates[torch.randint(len(candidates), (negatives,), device=states.device)]
    positive = (states * table[labels]).sum(dim=-1, keepdim=True)
    negative = (states @ table[drawn].T).masked_fill(
        drawn.view(1, -1) == labels.view(-1, 1), float("-inf")
    )
    logits = torch.cat([positive, negative], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(labels), dtype=torch.long, device=labels.device))


class DomainCandidates(nn.Module):
    """Which items a label competes with, per ``sequential_softmax``. The item sets are
    (non-persistent) buffers: they move with the model that holds them, and stay out of its
    checkpoints."""

    def __init__(self, is_target_item: torch.Tensor, softmax: str):
        super().__init__()
        if softmax not in SOFTMAXES:
            raise ValueError(f"sequential_softmax: {softmax!r} is not one of {list(SOFTMAXES)}")
        self.softmax = softmax
        is_target = is_target_item.clone().bool()
        is_target[0] = False  # the padding id competes with nothing
        is_aux = ~is_target
        is_aux[0] = False
        target_items = torch.nonzero(is_target).flatten()
        aux_items = torch.nonzero(is_aux).flatten()
        all_items = torch.nonzero(is_target | is_aux).flatten()
        n_items = len(is_target)
        for name, value in (
            ("is_target", is_target),
            ("target_items", target_items),
            ("aux_items", aux_items),
            ("all_items", all_items),
            ("position", _positions(n_items, target_items, aux_items)),
            ("all_position", _positions(n_items, all_items)),
        ):
            self.register_buffer(name, value, persistent=False)

    def of(self, target: bool):
        """(candidates, position) of a target (True) or auxiliary (False) label."""
        if self.softmax == "all":
            return self.all_items, self.all_position
        return (self.target_items if target else self.aux_items), self.position

    def describe(self, negatives: int) -> str:
        n_target, n_aux = len(self.target_items), len(self.aux_items)
        pool = (
            f"the label's domain ({n_target} target / {n_aux} auxiliary items)"
            if self.softmax == "domain"
            else f"all {n_target + n_aux} items"
        )
        if negatives > 0:
            return f"sampled softmax: the label against {negatives} uniform draws from {pool}"
        return f"cross-entropy over {pool}"


def _positions(n_items: int, *groups: torch.Tensor) -> torch.Tensor:
    position = torch.full((n_items,), -1, dtype=torch.long)
    for group in groups:
        position[group] = torch.arange(len(group))
    return position


@dataclass
class Objective:
    loss: Callable  # interaction -> loss tensor
    description: str  # what the log and the result file say the model was trained with


def training_objective(config, model, dataset) -> Objective:
    """The loss a sequential run trains ``model`` with, and its one-line description."""
    softmax = str(setting(config, "sequential_softmax"))
    negatives = int(setting(config, "sequential_negatives"))
    own = getattr(model, "sequential_objective", None)  # LLMEMF: its two-domain objective
    if own is not None:
        return Objective(model.calculate_loss, own)
    if not _has_item_table_state(model):
        description = (
            f"its own calculate_loss (loss_type {config['loss_type']}); sequential_softmax and "
            "sequential_negatives do not apply to it"
        )
        logger.warning(f"{type(model).__name__}: trained with {description}")
        return Objective(model.calculate_loss, description)
    candidates = DomainCandidates(dataset.target_item_mask, softmax).to(config["device"])

    def loss(interaction):
        states = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        labels = interaction[model.POS_ITEM_ID]
        table = model.item_embedding.weight
        target_rows = candidates.is_target[labels]
        total = table.sum() * 0.0  # defined (and differentiable) for any batch
        for rows, is_target in ((target_rows, True), (~target_rows & (labels > 0), False)):
            if rows.any():
                items, position = candidates.of(is_target)
                part = domain_cross_entropy(
                    states[rows], table, labels[rows], items, position, negatives
                )
                total = total + part * rows.sum() / len(labels)  # a mean over all examples
        return total

    return Objective(loss, candidates.describe(negatives))


def _has_item_table_state(model) -> bool:
    """RecBole's SASRec, GRU4Rec, NARM, STAMP, …: ``forward(item_seq, item_seq_len)`` gives the
    state that ``item_embedding`` rows are scored against (their CE loss)."""
    if not isinstance(getattr(model, "item_embedding", None), torch.nn.Embedding):
        return False
    if getattr(model, "loss_type", None) != "CE":
        return False
    parameters = list(inspect.signature(model.forward).parameters)
    return parameters == ["item_seq", "item_seq_len"]
