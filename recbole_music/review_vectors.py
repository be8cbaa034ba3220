"""A new user's review vector, made exactly as ``dataset_prep features`` made the dataset's.

With ``user_vectors: reviews`` or ``both``, MuSiC's auxiliary user vector starts from a text
encoder over the user's auxiliary-domain reviews (the ``users_aux`` table). For a user who
arrives after training, :class:`ReviewVectorizer` reads that table's manifest — encoder, kind,
pooling, dtype, length limit, prompt template and review-merging rule — and turns the new
user's reviews into the vector the model's user MLP was trained on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from dataset_prep.features.encoders import EncoderSpec, load_encoder
from dataset_prep.features.prompts import PromptSet
from dataset_prep.features.sources import UserTextRule, user_text
from dataset_prep.layout import AUX, USERS_AUX_TABLE
from dataset_prep.vector_table import load_vectors

logger = logging.getLogger(__name__)

# what the manifest must say for the vector to be remade exactly
NEEDED = ("model", "kind", "pooling", "dtype", "max_length", "prompt_template", "user_text_rule")


class ReviewVectorizer:
    def __init__(self, manifest: dict, source: str = "manifest"):
        missing = [key for key in NEEDED if key not in manifest]
        if missing:
            raise ValueError(
                f"{source}: no {', '.join(missing)}: the table was written by an older "
                "dataset_prep; rerun `python -m dataset_prep features` to embed new users' reviews"
            )
        self.manifest = manifest
        self.source = source
        self.dim = int(manifest["dim"])  # written by every feature table; the encoder must match
        self.domain = manifest.get("domain", AUX)
        self.rule = UserTextRule(**manifest["user_text_rule"])
        self.prompts = PromptSet("manifest", item="", user=manifest["prompt_template"])
        self._encoder = None

    @classmethod
    def for_table(
        cls, features_folder: str | Path, table: str = USERS_AUX_TABLE
    ) -> ReviewVectorizer:
        """The vectorizer of a feature table (its manifest, checked by the feature store)."""
        return cls(load_vectors(features_folder, table).meta, f"{features_folder}/{table}.json")

    def text(self, reviews: list[tuple[float, str]]) -> str:
        """What the encoder reads: the reviews merged (newest first, within the word budget)
        and put in the prompt."""
        return user_text(reviews, self.domain, self.prompts, self.rule)

    def vector(self, reviews: list[tuple[float, str]]) -> torch.Tensor:
        """The review vector of (timestamp, text) pairs; zeros when no review has words, as
        the tables hold for users without review text."""
        text = self.text(reviews)
        if not text:
            logger.warning("the new user's reviews hold no words: their review vector is zeros")
            return torch.zeros(self.dim)
        return torch.from_numpy(self.encoder().encode_texts([text])[0]).float()

    def encoder(self):
        """The manifest's encoder, loaded on first use (``from_pretrained``)."""
        if self._encoder is None:
            m = self.manifest
            model = m["model"]
            if model != "default" and Path(m.get("model_path") or "").is_dir():
                model = m["model_path"]  # the folder it was loaded from
            spec = EncoderSpec(
                model=model,
                kind=m["kind"],
                pooling=m["pooling"],
                dtype=m["dtype"],
                max_length=m["max_length"],
                first_layer=m.get("first_layer") or 1,
            )
            self._encoder = load_encoder(spec)
            if self._encoder.dim != self.dim:
                raise ValueError(
                    f"{self.source}: vectors of dim {self.dim}, but {model} gives "
                    f"{self._encoder.dim}: not the encoder that wrote the table"
                )
        return self._encoder
