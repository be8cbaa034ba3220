"""LLMEMF: the RecBole sequential model of LLM-EMF (docs/llmemf.md).

Input: a user's merged two-domain sequence (``item_id_list``, ``item_length``, from
:class:`SequentialCrossDomainDataset`); the model splits it into the target- and auxiliary-domain
sub-sequences itself. Five attention blocks:

* single-domain — a causal self-attention encoder over the target sequence (state ``h_T``) and one
  over the auxiliary sequence (``h_A``);
* cross-domain — a causal encoder over the merged sequence with a domain embedding (``h_M``), and
  cross-domain attention of ``h_T`` over the auxiliary states (``c_T``) and of ``h_A`` over the
  target states (``c_A``).

The next target item is scored by ``u_T = h_T + h_M + c_T`` against the item representations
(ID embedding fused with frozen CLIP text/image vectors, :mod:`.items`), cross-entropy over the
target items; the next auxiliary item, when ``aux_loss_weight`` > 0, by ``u_A = h_A + h_M + c_A``
over the auxiliary items (``sequential_softmax`` / ``sequential_negatives``: the objective every
sequential model of the plugin trains with, :mod:`recbole_music.model.sequential_loss`). Ablations: ``use_image: False`` (w/o image), ``use_llm_text: False``
(w/o LLM enrichment: the raw-text vectors), ``use_cross_domain: False`` (w/o cross-domain
attention: ``u_T = h_T``, ``u_A = h_A``), and ``use_text: False`` (ID embeddings only).
"""

from __future__ import annotations

import logging

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_music.config import setting
from recbole_music.data.sequence_dataset import domain_subsequences
from recbole_music.model.llmemf.attention import CrossDomainAttention, SequenceEncoder
from recbole_music.model.llmemf.items import ItemRepresentation, load_item_modalities
from recbole_music.model.sequential_loss import DomainCandidates, domain_cross_entropy

logger = logging.getLogger(__name__)


class LLMEMF(SequentialRecommender):
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        if not hasattr(dataset, "target_item_mask"):
            raise TypeError(
                "LLMEMF needs a cross-domain sequential dataset (SequentialCrossDomainDataset); "
                "run it with run_recbole_music / run_recbole_music.py"
            )
        dim = int(config["hidden_size"])
        self.use_cross_domain = bool(config["use_cross_domain"])
        self.aux_loss_weight = float(setting(config, "aux_loss_weight"))
        self.initializer_range = float(config["initializer_range"])

        # each domain's items, and the training softmax over them, as for every sequential model
        # (recbole_music/model/sequential_loss.py)
        self.candidates = DomainCandidates(
            dataset.target_item_mask, str(setting(config, "sequential_softmax"))
        )
        self.negatives = int(setting(config, "sequential_negatives"))
        self.sequential_objective = (
            f"{self.candidates.describe(self.negatives)}; the next target item from u_T, the "
            f"next auxiliary item from u_A with weight {self.aux_loss_weight}"
        )

        modalities, self.feature_report = load_item_modalities(config, dataset)
        logger.info(f"LLMEMF item features: {self.feature_report}")
        self.items = ItemRepresentation(self.n_items, dim, modalities)

        block = dict(
            n_layers=int(config["n_layers"]),
            n_heads=int(config["n_heads"]),
            inner_size=int(config["inner_size"]),
            hidden_dropout=float(config["hidden_dropout_prob"]),
            attn_dropout=float(config["attn_dropout_prob"]),
            hidden_act=config["hidden_act"],
            layer_norm_eps=float(config["layer_norm_eps"]),
        )
        self.target_encoder = SequenceEncoder(self.max_seq_length, dim, **block)
        self.aux_encoder = SequenceEncoder(self.max_seq_length, dim, **block)
        if self.use_cross_domain:
            cross = {k: v for k, v in block.items() if k not in ("n_layers", "hidden_act")}
            self.merged_encoder = SequenceEncoder(
                self.max_seq_length, dim, with_domain=True, **block
            )
            self.target_cross = CrossDomainAttention(dim, **cross)
            self.aux_cross = CrossDomainAttention(dim, **cross)
        self.apply(self._init_weights)
        with torch.no_grad():
            self.items.id_embedding.weight[0].zero_()

    @property
    def is_target_item(self) -> torch.Tensor:
        return self.candidates.is_target

    @property
    def target_items(self) -> torch.Tensor:
        return self.candidates.target_items

    @property
    def aux_items(self) -> torch.Tensor:
        return self.candidates.aux_items

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    # -- user states ------------------------------------------------------------------------
    def forward(self, item_seq, item_seq_len, table=None):
        """(u_T, u_A, item table): the user's state for the next target and auxiliary item."""
        table = self.items() if table is None else table
        t_seq, t_len, a_seq, a_len = domain_subsequences(
            item_seq, item_seq_len, self.is_target_item
        )
        t_states, h_t = self.target_encoder(table[t_seq], t_len)
        a_states, h_a = self.aux_encoder(table[a_seq], a_len)
        if not self.use_cross_domain:
            return h_t, h_a, table
        domains = self.is_target_item[item_seq].long()
        _, h_m = self.merged_encoder(table[item_seq], item_seq_len, domains)
        c_t = self.target_cross(h_t, a_states, a_len)
        c_a = self.aux_cross(h_a, t_states, t_len)
        return h_t + h_m + c_t, h_a + h_m + c_a, table

    def _domain_logits(self, state, table, items):
        return state @ table[items].T

    # -- RecBole interface --------------------------------------------------------------------
    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        labels = interaction[self.POS_ITEM_ID]
        u_t, u_a, table = self.forward(item_seq, item_seq_len)
        target_rows = self.is_target_item[labels]
        candidates = self.candidates
        loss = table.sum() * 0.0  # defined (and differentiable) for a batch without labels
        if target_rows.any():
            items, position = candidates.of(True)
            loss = loss + domain_cross_entropy(
                u_t[target_rows], table, labels[target_rows], items, position, self.negatives
            )
        aux_rows = ~target_rows & (labels > 0)
        if self.aux_loss_weight > 0 and aux_rows.any():
            items, position = candidates.of(False)
            loss = loss + self.aux_loss_weight * domain_cross_entropy(
                u_a[aux_rows], table, labels[aux_rows], items, position, self.negatives
            )
        return loss

    def predict(self, interaction):
        u_t, u_a, table = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        items = interaction[self.ITEM_ID]
        state = torch.where(self.is_target_item[items].view(-1, 1), u_t, u_a)
        return (state * table[items]).sum(dim=-1)

    def full_sort_predict(self, interaction):
        """Scores of every item for the NEXT TARGET item: auxiliary items and padding get -inf."""
        u_t, _, table = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        scores = torch.full((len(u_t), self.n_items), float("-inf"), device=u_t.device)
        scores[:, self.target_items] = self._domain_logits(u_t, table, self.target_items)
        return scores

    def full_sort_predict_aux(self, interaction):
        """Scores of every item for the next AUXILIARY item (target items get -inf)."""
        _, u_a, table = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        scores = torch.full((len(u_a), self.n_items), float("-inf"), device=u_a.device)
        scores[:, self.aux_items] = self._domain_logits(u_a, table, self.aux_items)
        return scores
