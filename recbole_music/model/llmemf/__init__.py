"""LLM-EMF: LLM-enhanced multimodal fusion for cross-domain sequential recommendation.

``model`` holds the RecBole model, ``items`` the item representation (ID embedding fused with
frozen CLIP image and text vectors), ``attention`` the attention blocks.
"""

from recbole_music.model.llmemf.model import LLMEMF

__all__ = ["LLMEMF"]
