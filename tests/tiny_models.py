"""Tiny transformers models for tests: built from config objects, saved with save_pretrained,
so the product loads them through its own ``from_pretrained`` path (no hub, no download)."""

from __future__ import annotations

import torch

CORPUS = [
    "a dark brooding film about the night and the harbor",
    "a calm gentle album of soothing quiet songs",
    "upbeat cheerful pop music with catchy bouncy melodies",
    "summarise the key features of this item title categories description summary",
    "reviews one customer wrote newest first tastes genres moods",
    "thriller horror comedy romance ambient metal soul movies tv cds vinyl",
]


def tiny_tokenizer(with_pad: bool = True):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        CORPUS,
        trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<s>", "</s>", "<image>"]),
    )
    kwargs = {"pad_token": "<pad>"} if with_pad else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=64,
        **kwargs,
    )


def save_model(folder, model, *parts):
    torch.manual_seed(0)
    model.save_pretrained(folder)
    for p in parts:
        p.save_pretrained(folder)
    return str(folder)


def save_tiny_bert(folder) -> str:
    """A 2-layer, 16-wide BERT over :data:`CORPUS`'s words: a stand-in text encoder."""
    from transformers import BertConfig, BertModel

    tok = tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    return save_model(folder, BertModel(config), tok)
