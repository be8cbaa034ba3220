"""LLM-EMF's item representation: a learnable ID embedding fused with frozen item vectors.

    e_i = ID(i) + [has_text(i)] · W_t t_i + [has_image(i)] · W_v v_i

``t_i`` is the CLIP text-tower vector of the item's LLM-enriched text (or of its raw text), ``v_i``
the CLIP image-tower vector; both are frozen (buffers, unit-normalised), only the projections
learn. An item without a vector of a modality gets nothing from it (its ID embedding carries it),
and the log says how many items that is.

The vectors come from ``python -m dataset_prep enrich`` (dataset/<name>/features/): tables
``item_text_llm`` (enriched text), ``item_text_raw`` (raw text) and ``item_image``.
:func:`load_item_modalities` picks them by the switches and says what it did: no enriched
table → raw text ("w/o LLM enrichment"), no image table → "w/o image".
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)


def _load(dataset, table: str):
    try:
        return dataset.load_features(table, dataset.iid_field)
    except FileNotFoundError:
        return None


def load_item_modalities(config, dataset) -> tuple[dict, dict]:
    """({modality: (vectors [n_items, dim], has_vector [n_items])}, report)."""
    modalities, report = {}, {}
    folder = dataset.feature_path()
    if config["use_text"]:
        text = None
        if config["use_llm_text"]:
            text = _load(dataset, config["text_table"])
            if text is not None:
                report["text"] = f"{config['text_table']} (LLM-enriched text)"
            else:
                logger.warning(
                    "LLMEMF: no LLM-enriched item text vectors (%s/%s.json); running on the RAW "
                    "item text, i.e. w/o LLM enrichment. Make them with `python -m dataset_prep "
                    "enrich --dataset %s`.",
                    folder,
                    config["text_table"],
                    dataset.dataset_name,
                )
        if text is None:
            text = _load(dataset, config["raw_text_table"])
            if text is not None:
                report["text"] = f"{config['raw_text_table']} (raw text)"
            else:
                logger.warning(
                    "LLMEMF: no item text vectors at all (%s/%s.json): ID embeddings only "
                    "(w/o text). Make them with `python -m dataset_prep enrich --dataset %s`.",
                    folder,
                    config["raw_text_table"],
                    dataset.dataset_name,
                )
        if text is not None:
            modalities["text"] = text
    else:
        report["text"] = "off (use_text: False)"
    if config["use_image"]:
        image = _load(dataset, config["image_table"])
        if image is not None:
            modalities["image"] = image
            report["image"] = config["image_table"]
        else:
            logger.warning(
                "LLMEMF: no item image vectors (%s/%s.json): running w/o image.",
                folder,
                config["image_table"],
            )
            report["image"] = "missing: w/o image"
    else:
        report["image"] = "off (use_image: False)"
    for name, (_vectors, mask) in modalities.items():
        missing = int((~mask[1:]).sum())
        if missing:
            logger.warning(
                "LLMEMF: %d of %d items have no %s vector: their ID embedding stands alone for "
                "that modality",
                missing,
                len(mask) - 1,
                name,
            )
        report[f"{name}_coverage"] = f"{len(mask) - 1 - missing}/{len(mask) - 1}"
    return modalities, report


class ItemRepresentation(nn.Module):
    def __init__(self, n_items: int, dim: int, modalities: dict):
        super().__init__()
        self.id_embedding = nn.Embedding(n_items, dim, padding_idx=0)
        self.names = sorted(modalities)
        self.projections = nn.ModuleDict()
        for name in self.names:
            vectors, mask = modalities[name]
            if vectors.shape[0] != n_items:
                raise ValueError(f"{name} vectors: {vectors.shape[0]} rows for {n_items} items")
            vectors = F.normalize(vectors.float(), dim=-1) * mask.view(-1, 1)
            self.register_buffer(f"{name}_vectors", vectors, persistent=False)
            self.register_buffer(f"{name}_mask", mask.clone(), persistent=False)
            self.projections[name] = nn.Linear(vectors.shape[1], dim)

    def forward(self) -> torch.Tensor:
        """The representation of every item [n_items, dim] (row 0, the padding id, is zero)."""
        table = self.id_embedding.weight
        for name in self.names:
            mask = getattr(self, f"{name}_mask").view(-1, 1)
            table = table + self.projections[name](getattr(self, f"{name}_vectors")) * mask
        return table
