"""Offline feature extraction (MuSiC §3.2): item and user vectors from (multimodal) LLMs.

``python -m dataset_prep features --dataset NAME`` reads ``dataset/NAME/`` and writes the vector
tables ``items``, ``users_aux`` and ``users_target`` into ``dataset/NAME/features/`` with
:func:`dataset_prep.vector_table.save_vectors`. Modules:

* :mod:`.prompts`   — the item and user prompt templates (the one place they live);
* :mod:`.pooling`   — first-last-avg, mean-of-last, the model's pooler;
* :mod:`.encoders`  — one interface over text encoders, causal LMs, CLIP, LLaVA-type VLMs and
  MiniCPM-V (remote code, opt-in), chosen by :class:`EncoderSpec`;
* :mod:`.images`    — image loading and the colour-histogram descriptor;
* :mod:`.sources`   — item and user texts from the dataset folder;
* :mod:`.pipeline`  — batching, sharded resumable cache, final tables, checks.

Importing this package does not import torch or transformers.
"""

from dataset_prep.features.encoders import EncoderSpec, load_encoder
from dataset_prep.features.pipeline import FeatureError, extract_features, verify_table
from dataset_prep.features.prompts import PromptSet, get_prompts

__all__ = [
    "EncoderSpec",
    "FeatureError",
    "PromptSet",
    "extract_features",
    "get_prompts",
    "load_encoder",
    "verify_table",
]
