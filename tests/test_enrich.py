"""LLM-EMF's enrichment step (dataset_prep enrich): a tiny causal LM and a tiny CLIP built from
config objects, saved with save_pretrained and loaded back through the product's own path."""

from __future__ import annotations

import json
import logging
import sys

import pytest
import torch
from sequence_fixtures import sequential_config, write_tiny_sequences

from dataset_prep.enrich import run_enrich
from dataset_prep.enrich_text import (
    CACHE_FILE,
    DEFAULT_PROMPT,
    EnrichSettings,
    check_prompt,
    enriched_text,
    item_texts,
    parse_enrichment,
)
from dataset_prep.vector_table import load_vectors

torch.set_num_threads(1)

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

CORPUS = [
    "you describe products of an online shop for a recommender system domain product",
    "answer in exactly three lines keywords summary interests five to eight comma separated",
    "one short sentence on what the product is the of a customer likely to buy it",
    "spicy sauce steel pan number food kitchen hot cook chef dinner gift",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 "
    "33 34 35 : , .",
]
SETTINGS = EnrichSettings(max_new_tokens=6, batch_size=4, progress=False)


def _tokenizer(append_eos: bool = False):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        CORPUS, trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<s>", "</s>"])
    )
    if append_eos:  # CLIP's text tower pools at the end-of-text token
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=128,
    )


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        GPT2Config,
        GPT2LMHeadModel,
    )

    root = tmp_path_factory.mktemp("models")
    tok = _tokenizer()
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_embd=16,
            n_layer=1,
            n_head=2,
            n_positions=256,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
    )
    lm.save_pretrained(root / "lm")
    tok.save_pretrained(root / "lm")
    clip_tok = _tokenizer(append_eos=True)
    clip = CLIPModel(
        CLIPConfig(
            text_config={
                "vocab_size": len(tok),
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "max_position_embeddings": 128,
                "eos_token_id": clip_tok.eos_token_id,
                "pad_token_id": clip_tok.pad_token_id,
            },
            vision_config={
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": 16,
                "patch_size": 8,
            },
            projection_dim=8,
        )
    )
    clip.save_pretrained(root / "clip")
    clip_tok.save_pretrained(root / "clip")
    CLIPImageProcessorPil(
        size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
    ).save_pretrained(root / "clip")
    return {"lm": str(root / "lm"), "clip": str(root / "clip")}


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    write_tiny_sequences(tmp_path / "dataset", images=True)
    return tmp_path / "dataset"


def _cache(folder):
    return [
        json.loads(line) for line in (folder / "features" / CACHE_FILE).read_text().splitlines()
    ]


def test_parse_enrichment():
    answer = "Keywords: hot, sauce, chili\nSummary: A spicy sauce.\n- Interests: cooking, heat"
    parsed = parse_enrichment(answer)
    assert parsed == {
        "keywords": "hot, sauce, chili",
        "summary": "A spicy sauce.",
        "interests": "cooking, heat",
        "parsed": True,
    }
    loose = parse_enrichment("just some words\nmore")
    assert loose["parsed"] is False and loose["summary"] == "just some words more"
    text = enriched_text("Spicy sauce", parsed)
    assert text.splitlines() == [
        "Spicy sauce",
        "Keywords: hot, sauce, chili",
        "Summary: A spicy sauce.",
        "Interests: cooking, heat",
    ]
    with pytest.raises(ValueError, match="title"):
        check_prompt("Describe {name}")


def test_items_get_their_domain_label(data_root):
    items = {i.id: i for i in item_texts(data_root / "tiny_seq", "tiny_seq")}
    assert items["a000"].domain == "food" and items["t000"].domain == "kitchen"
    assert items["a019"].title == ""  # an item without text
    assert items["a000"].image == "images/a000.png" and items["a001"].image == ""


def test_enrichment_cache_records_model_and_prompt_and_is_reused(
    data_root, tiny_models, monkeypatch
):
    folder = data_root / "tiny_seq"
    first = run_enrich(
        data_root,
        "tiny_seq",
        generator=tiny_models["lm"],
        clip=tiny_models["clip"],
        settings=SETTINGS,
    )
    n_items = 36
    assert first["enrichment"]["generated"] == n_items - 1  # a019 has no text
    assert first["enrichment"]["skipped_no_text"] == 1
    records = _cache(folder)
    assert len(records) == n_items - 1
    rec = records[0]
    assert rec["model"] == tiny_models["lm"] and rec["model_key"].startswith("sha256:")
    prompts = json.loads((folder / "features" / "enriched_items.prompts.json").read_text())
    assert prompts[rec["prompt_sha"]] == DEFAULT_PROMPT
    assert rec["generation"] == {"max_new_tokens": 6, "do_sample": False}

    # same model and prompt: everything from the cache, and the model is not even loaded
    import dataset_prep.enrich_text as enrich_text

    def no_model(*args, **kwargs):
        raise AssertionError("the generator was loaded although the cache holds every item")

    monkeypatch.setattr(enrich_text, "TextGenerator", no_model)
    again = run_enrich(
        data_root,
        "tiny_seq",
        generator=tiny_models["lm"],
        clip=tiny_models["clip"],
        settings=SETTINGS,
    )
    assert again["enrichment"]["generated"] == 0
    assert again["enrichment"]["reused"] == n_items - 1
    assert len(_cache(folder)) == n_items - 1
    monkeypatch.undo()

    # another prompt: generated anew, the old answers stay in the cache
    other = DEFAULT_PROMPT.replace("three lines", "3 lines")
    third = run_enrich(
        data_root,
        "tiny_seq",
        generator=tiny_models["lm"],
        clip=tiny_models["clip"],
        prompt=other,
        settings=SETTINGS,
    )
    assert third["enrichment"]["generated"] == n_items - 1
    assert len({r["prompt_sha"] for r in _cache(folder)}) == 2


def test_a_changed_item_text_is_enriched_again(data_root, tiny_models):
    folder = data_root / "tiny_seq"
    run_enrich(
        data_root,
        "tiny_seq",
        generator=tiny_models["lm"],
        clip=tiny_models["clip"],
        settings=SETTINGS,
    )
    item_file = folder / "tiny_seq.item"
    item_file.write_text(
        item_file.read_text().replace("steel pan number 25\t", "cast iron pan number 25\t")
    )
    again = run_enrich(
        data_root,
        "tiny_seq",
        generator=tiny_models["lm"],
        clip=tiny_models["clip"],
        settings=SETTINGS,
    )
    assert again["enrichment"]["generated"] == 1


def test_tables_from_clip_towers(data_root, tiny_models):
    folder = data_root / "tiny_seq"
    summary = run_enrich(
        data_root,
        "tiny_seq",
        generator=tiny_models["lm"],
        clip=tiny_models["clip"],
        settings=SETTINGS,
    )
    assert summary["encoder"]["clip"] is True
    raw = load_vectors(folder / "features", "item_text_raw")
    llm = load_vectors(folder / "features", "item_text_llm")
    image = load_vectors(folder / "features", "item_image")
    assert raw.dim == llm.dim == image.dim == 8  # CLIP's projection size
    assert len(raw.ids) == len(llm.ids) == 35 and "a019" not in raw.ids
    assert sorted(image.ids) == sorted(i.id for i in item_texts(folder, "tiny_seq") if i.image)
    assert llm.meta["generator"] == tiny_models["lm"]
    assert llm.meta["prompt_template"] == DEFAULT_PROMPT
    assert llm.meta["kind"] == "clip" and image.meta["tower"] == "image"
    # enriched and raw text differ, so do their vectors
    assert not (raw.vectors[0] == llm.vectors[0]).all()

    # LLMEMF picks them up
    from recbole_music.data.sequence_dataset import SequentialCrossDomainDataset
    from recbole_music.model.llmemf.items import load_item_modalities

    config = sequential_config("LLMEMF", state="ERROR")
    data = SequentialCrossDomainDataset(config)
    modalities, report = load_item_modalities(config, data)
    assert sorted(modalities) == ["image", "text"]
    assert report["text"].startswith("item_text_llm")


def test_without_a_generation_model_the_step_says_so(data_root, tiny_models, caplog):
    with caplog.at_level(logging.WARNING):
        summary = run_enrich(
            data_root,
            "tiny_seq",
            generator=str(data_root / "no_such_model"),
            clip=tiny_models["clip"],
            settings=SETTINGS,
        )
    assert summary["enrichment"]["available"] is False
    assert "NO LLM ENRICHMENT" in caplog.text and "raw" in caplog.text
    features = data_root / "tiny_seq" / "features"
    assert (features / "item_text_raw.json").is_file()
    assert not (features / "item_text_llm.json").exists()


def test_without_clip_the_packaged_text_encoder_stands_in(data_root, caplog):
    with caplog.at_level(logging.WARNING):
        summary = run_enrich(
            data_root, "tiny_seq", generator="none", clip="none", settings=SETTINGS
        )
    assert summary["encoder"]["clip"] is False
    assert "NO CLIP" in caplog.text and "w/o image" in caplog.text
    features = data_root / "tiny_seq" / "features"
    raw = load_vectors(features, "item_text_raw")
    assert raw.dim == 384 and raw.meta["model"] == "default"
    assert not (features / "item_image.json").exists()


def test_command_line(data_root, tiny_models, capsys):
    from dataset_prep.cli import main

    rc = main(
        [
            "enrich",
            "--dataset",
            "tiny_seq",
            "--generator",
            "none",
            "--clip",
            tiny_models["clip"],
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "enrichment: NONE" in out and "item_text_raw: 35 × 8" in out
    assert "item_image" in out
    assert main(["enrich", "--dataset", "nope", "--generator", "none", "--clip", "none"]) == 2


class _CountingEncoder:
    """An encoder that counts the texts it is asked to embed."""

    def __init__(self, enc):
        self.enc, self.texts = enc, 0

    def __getattr__(self, name):
        return getattr(self.enc, name)

    def encode_texts(self, texts):
        self.texts += len(texts)
        return self.enc.encode_texts(texts)


def test_raw_text_vectors_reuse_the_items_table_of_the_same_encoder(data_root, tmp_path):
    import numpy as np
    from tiny_models import save_tiny_bert

    from dataset_prep.cli import main
    from dataset_prep.features.encoders import EncoderSpec, load_encoder

    bert = save_tiny_bert(tmp_path / "bert")
    assert (
        main(["features", "--dataset", "tiny_seq", "--items", "--encoder", bert, "--no-progress"])
        == 0
    )
    features = data_root / "tiny_seq" / "features"
    items = load_vectors(features, "items")

    same = _CountingEncoder(load_encoder(EncoderSpec(model=bert, kind="text")))
    summary = run_enrich(
        data_root, "tiny_seq", generator="none", encoder_obj=same, settings=SETTINGS
    )
    assert same.texts == 0  # nothing embedded again
    assert summary["tables"]["item_text_raw"]["reused_from"] == "items"
    raw = load_vectors(features, "item_text_raw")
    assert raw.ids == items.ids and np.array_equal(raw.vectors, items.vectors)
    assert raw.meta["reused_from"]["fingerprint"] == items.meta["fingerprint"]

    # another pooling is another fingerprint: embedded, and not the items' vectors
    mean = _CountingEncoder(load_encoder(EncoderSpec(model=bert, kind="text", pooling="mean")))
    run_enrich(data_root, "tiny_seq", generator="none", encoder_obj=mean, settings=SETTINGS)
    assert mean.texts == len(items.ids)
    assert not np.allclose(load_vectors(features, "item_text_raw").vectors, items.vectors)
