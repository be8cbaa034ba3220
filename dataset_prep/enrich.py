"""``python -m dataset_prep enrich``: LLM-EMF's item text enrichment and frozen CLIP item vectors.

Three steps over ``dataset/<name>/<name>.item``:

1. **Enrich** — a causal LM is prompted with each item's title and domain and writes keywords, a
   short summary and the interests of a likely buyer (greedy decoding: the same model and prompt
   give the same text). Every answer is cached per item in ``features/enriched_items.jsonl`` with
   the model that wrote it (its identity: hub id, or the hash of a local folder's config and the
   weight files' names/sizes/times), the prompt template's SHA-256 (templates by hash in
   ``enriched_items.prompts.json``) and the hash of the item text it was asked about. A rerun with
   the same model and prompt reuses the cache (without loading the model when nothing is missing);
   another model or prompt, or a changed item text, generates anew. The cache is appended one
   batch at a time, so an interrupted run resumes.
2. **Embed text** — CLIP's text tower embeds the raw item text (table ``item_text_raw``: the
   text ``dataset_prep features`` gives a sentence encoder, "title. categories. description")
   and the enriched text, the raw text followed by the LLM's answer (table ``item_text_llm``).
   When ``features/items`` was made by the same encoder, pooling and prompt from the same texts
   (the fingerprint rule of the features cache), it is copied as ``item_text_raw`` instead of
   embedding every item again (``--clip none`` with the default encoder is that case).
3. **Embed images** — CLIP's image tower embeds the items' images (table ``item_image``).

What cannot be had is said, and the step goes on with what can:

* no generation model (``--generator none``, or it cannot be loaded: no local folder, no hub)
  → no ``item_text_llm``; LLMEMF then runs on the raw text (w/o LLM enrichment);
* no CLIP model → the text tables come from the packaged all-MiniLM-L6-v2 text encoder instead,
  and there are no image vectors (LLMEMF runs w/o image); the manifests name the encoder used;
* no item names an image → no ``item_image`` (w/o image).

Step 1 (prompt, answer parsing, cache, generator) is ``dataset_prep.enrich_text``; this module
runs the steps and holds the CLIP side and the command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

from dataset_prep.enrich_text import (
    DEFAULT_GENERATOR,
    DEFAULT_PROMPT,
    RAW_PROMPT_SET,
    EnrichSettings,
    check_prompt,
    enrich_items,
    enriched_text,
    is_local,
    item_texts,
)
from dataset_prep.features.encoders import (
    ClipEncoder,
    EncoderError,
    EncoderSpec,
    _features,
    load_encoder,
)
from dataset_prep.features.pipeline import (
    RunSettings,
    embed_table,
    fingerprint,
    fingerprint_info,
    image_settings,
    verify_table,
)
from dataset_prep.features.prompts import PROMPTS
from dataset_prep.features.sources import Row, texts_digest
from dataset_prep.layout import BUILD_RECORD, FEATURES_FOLDER
from dataset_prep.progress import NO_PROGRESS_HELP
from dataset_prep.vector_table import load_vectors, save_vectors

logger = logging.getLogger("dataset_prep.enrich")

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
TABLE_RAW, TABLE_LLM, TABLE_IMAGE = "item_text_raw", "item_text_llm", "item_image"


# -- CLIP towers ---------------------------------------------------------------------------------
def load_text_image_encoder(clip: str, settings: EnrichSettings):
    """(encoder, is_clip, reason): CLIP when it loads, else the packaged text encoder."""
    reason = ""
    if clip and clip.lower() != "none":
        spec = EncoderSpec(model=clip, kind="clip", device=settings.device, dtype=settings.dtype)
        if (
            is_local(clip)
            or not (settings.offline or os.environ.get("HF_HUB_OFFLINE") == "1")
            or _hub_cached(clip)
        ):
            try:
                return load_encoder(spec), True, ""
            except (EncoderError, OSError) as exc:
                reason = f"CLIP model '{clip}' cannot be loaded here ({exc})"
        else:
            reason = f"CLIP model '{clip}' is not in the local hub cache (offline)"
    else:
        reason = "no CLIP model asked for (--clip none)"
    fallback = load_encoder(EncoderSpec(model="default", device=settings.device))
    return fallback, False, reason


def _hub_cached(model: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    return isinstance(try_to_load_from_cache(model, "config.json"), str)


def clip_image_encoder(clip_encoder):
    """The same loaded CLIP, as an encoder of images only (rows without image are skipped)."""

    class ClipImageTower(ClipEncoder):
        def __init__(self, loaded):  # share the loaded model, tokenizer and processor
            self.__dict__.update(loaded.__dict__)

        def encode_texts(self, texts):
            raise NotImplementedError("the image tower embeds images only")

        def encode_items(self, texts, images):
            import torch
            import torch.nn.functional as F

            pix = self.image_processor(images, return_tensors="pt")
            with torch.inference_mode():
                img = _features(
                    self.model.get_image_features(
                        pixel_values=pix["pixel_values"].to(self.spec.device, self.dtype)
                    )
                ).float()
            return F.normalize(img, dim=-1).cpu().numpy()

        def describe(self):
            return {**super().describe(), "tower": "image"}

    return ClipImageTower(clip_encoder)


# -- reusing the items table of `dataset_prep features` ----------------------------------------
def reuse_items_table(
    features: Path, table: str, rows: list, encoder, run, template: str, extra: dict, meta: dict
) -> dict | None:
    """``features/items`` written as ``table`` when the features cache's rule says it holds the
    same vectors: the fingerprint of this encoder (model, pooling, layers, dtype, max length),
    the item prompt and no images equals the items table's, and so do the ids and texts.
    None (said in the log) otherwise."""
    import numpy as np

    started = time.monotonic()
    manifest_path = features / "items.json"
    if not manifest_path.is_file():
        return None
    made = json.loads(manifest_path.read_text())
    images = image_settings(encoder, run, is_items=False)  # text only
    if made.get("fingerprint") != fingerprint(fingerprint_info("items", encoder, template, images)):
        logger.info(
            "%s: features/items was made by another encoder, pooling or prompt (or with "
            "images); embedding the items",
            table,
        )
        return None
    if "texts_sha256" not in made:
        logger.info(
            "%s: features/items does not record its texts (an earlier version wrote "
            "it); embedding the items",
            table,
        )
        return None
    if made["texts_sha256"] != texts_digest(rows):
        logger.info(
            "%s: features/items was made from other item texts (the dataset changed "
            "since?); embedding the items",
            table,
        )
        return None
    items = load_vectors(features, "items")
    info = fingerprint_info(table, encoder, template, images, extra)
    manifest = {
        **{k: v for k, v in made.items() if k not in ("rows", "dim", "prompt_set", "run")},
        **meta,
        **extra,
        "table": table,
        "fingerprint": fingerprint(info),
        "reused_from": {"table": "items", "fingerprint": made["fingerprint"]},
        "run": {
            "rows_embedded": 0,
            "rows_from_cache": 0,
            "rows_reused": len(items.ids),
            "seconds": round(time.monotonic() - started, 2),
        },
    }
    save_vectors(features, table, items.ids, np.asarray(items.vectors), manifest)
    logger.info(
        "%s: the %d vectors of features/items reused (same encoder, pooling, prompt and texts)",
        table,
        len(items.ids),
    )
    return {"rows": len(items.ids), "dim": items.dim, **manifest}


# -- the whole step ------------------------------------------------------------------------------
def run_enrich(
    data_path: Path,
    name: str,
    *,
    generator: str = DEFAULT_GENERATOR,
    clip: str = DEFAULT_CLIP,
    prompt: str = DEFAULT_PROMPT,
    settings: EnrichSettings | None = None,
    generator_obj=None,
    encoder_obj=None,
) -> dict:
    """Enrich and embed the items of ``data_path/name``; returns a summary (also in the log)."""
    settings = settings or EnrichSettings()
    check_prompt(prompt)
    folder = Path(data_path) / name
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such dataset folder (build it first)")
    features = folder / FEATURES_FOLDER
    items = item_texts(folder, name)
    build = (
        json.loads((folder / BUILD_RECORD).read_text()) if (folder / BUILD_RECORD).is_file() else {}
    )
    summary: dict = {"dataset": name, "items": len(items)}

    # 1. enrichment
    if generator and generator.lower() != "none":
        enrichment = enrich_items(items, features, generator, prompt, settings, generator_obj)
    else:
        enrichment = {
            "available": False,
            "records": {},
            "generated": 0,
            "reused": 0,
            "reason": "no generation model asked for (--generator none)",
        }
    summary["enrichment"] = {k: v for k, v in enrichment.items() if k != "records"}
    if not enrichment["available"]:
        earlier = features / f"{TABLE_LLM}.json"
        if earlier.is_file():
            made_by = json.loads(earlier.read_text()).get("generator")
            logger.warning(
                "NO LLM ENRICHMENT now: %s. The %s table of an earlier run (generator %s) is "
                "left in place, and LLMEMF will use it; delete %s to run on the raw text.",
                enrichment["reason"],
                TABLE_LLM,
                made_by,
                earlier,
            )
        else:
            logger.warning(
                "NO LLM ENRICHMENT: %s. Items keep their raw text; LLMEMF will run on the "
                "raw-text vectors (w/o LLM enrichment).",
                enrichment["reason"],
            )

    # 2./3. the towers
    if encoder_obj is not None:
        encoder, is_clip, why = encoder_obj, encoder_obj.kind == "clip", ""
    else:
        encoder, is_clip, why = load_text_image_encoder(clip, settings)
    summary["encoder"] = {"model": encoder.spec.model, "kind": encoder.kind, "clip": is_clip}
    if not is_clip:
        logger.warning(
            "NO CLIP: %s. Item TEXT vectors come from %s instead of CLIP's text tower, and "
            "there are NO image vectors (LLMEMF runs w/o image).",
            why,
            "the packaged all-MiniLM-L6-v2 text encoder"
            if encoder.spec.model == "default"
            else encoder.spec.model,
        )
        summary["encoder"]["fallback_reason"] = why
    run = RunSettings(batch_size=max(settings.batch_size, 1) * 4, progress=settings.progress)
    meta = {
        "dataset": name,
        "generated": bool(build.get("generated", False)),
        "step": "dataset_prep enrich (LLM-EMF)",
        "clip": is_clip,
    }
    tables = {}

    def text_table(table, texts, template, extra, reuse=False):
        rows = [Row(i.id, texts.get(i.id, ""), "", not texts.get(i.id)) for i in items]
        m = (
            reuse_items_table(features, table, rows, encoder, run, template, extra, meta)
            if reuse
            else None
        )
        if m is None:
            m = embed_table(
                table,
                rows,
                encoder,
                features_dir=features,
                base_dir=folder,
                settings=run,
                template=template,
                extra_fingerprint=extra,
                meta=meta,
                is_items=False,
            )
        if m is None:
            logger.warning("%s: no item has text: no table written", table)
            return
        verify_table(folder, name, table)
        tables[table] = {
            "rows": m["rows"],
            "dim": m["dim"],
            "encoder": encoder.spec.model,
            "reused_from": m.get("reused_from", {}).get("table"),
        }

    text_table(
        TABLE_RAW,
        {i.id: i.raw for i in items},
        PROMPTS[RAW_PROMPT_SET].item,
        {"text": "raw"},
        reuse=True,
    )
    if enrichment["available"] and enrichment["records"]:
        recs = enrichment["records"]
        texts = {i.id: enriched_text(i.raw, recs[i.id]) for i in items if i.id in recs}
        text_table(
            TABLE_LLM,
            texts,
            "raw item text + LLM keywords/summary/interests",
            {
                "text": "llm-enriched",
                "generator": generator,
                "generator_key": enrichment["model_key"],
                "prompt_sha": enrichment["prompt_sha"],
                "prompt_template": prompt,
                "generation": settings.generation(),
                "parsed": int(sum(r["parsed"] for r in recs.values())),
                "answers": len(recs),
            },
        )
    with_image = [i for i in items if i.image]
    if is_clip and with_image:
        rows = [Row(i.id, "", i.image, True) for i in items]
        m = embed_table(
            TABLE_IMAGE,
            rows,
            clip_image_encoder(encoder),
            features_dir=features,
            base_dir=folder,
            settings=run,
            template="image",
            meta=meta,
            extra_fingerprint={"tower": "image"},
            is_items=True,
        )
        verify_table(folder, name, TABLE_IMAGE)
        tables[TABLE_IMAGE] = {"rows": m["rows"], "dim": m["dim"], "encoder": encoder.spec.model}
    elif is_clip:
        logger.warning("no item names an image: no image vectors (LLMEMF runs w/o image)")
    summary["tables"] = tables
    return summary


# -- the command ---------------------------------------------------------------------------------
_EPILOG = """\
examples:
  # the defaults (downloaded on a machine that reaches the model hub; GPU advised)
  python -m dataset_prep enrich --dataset food_kitchen --device cuda --dtype bfloat16
  # local model folders
  python -m dataset_prep enrich --dataset food_kitchen --generator /models/Qwen2.5-1.5B-Instruct \\
      --clip /models/clip-vit-base-patch32
  # no LLM, no CLIP (what an offline CPU machine can do): raw-text vectors from the packaged
  # all-MiniLM-L6-v2; LLMEMF runs w/o LLM enrichment and w/o image
  python -m dataset_prep enrich --dataset food_kitchen --generator none --clip none

A rerun reuses the cached answers in <dataset>/features/enriched_items.jsonl (same model and
prompt) and the finished vector shards.
"""


def add_enrich_parser(sub) -> argparse.ArgumentParser:
    e = sub.add_parser(
        "enrich",
        help="LLM-EMF: enrich item text with an LLM and embed items with CLIP",
        description="Write features/item_text_raw, item_text_llm and item_image of a dataset "
        "(LLM-EMF's item features).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("--dataset", required=True, help="dataset folder name under --data-path")
    e.add_argument("--data-path", type=Path, default=Path("dataset"))
    e.add_argument(
        "--generator",
        default=DEFAULT_GENERATOR,
        help=f"causal LM: a folder, a hub id, or 'none' (default: {DEFAULT_GENERATOR})",
    )
    e.add_argument(
        "--clip",
        default=DEFAULT_CLIP,
        help=f"CLIP model: a folder, a hub id, or 'none' (default: {DEFAULT_CLIP})",
    )
    e.add_argument("--prompt", help="a text file holding the prompt template ({title}, {domain})")
    e.add_argument("--max-new-tokens", type=int, default=96)
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--device", default="cpu")
    e.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    e.add_argument(
        "--offline", action="store_true", help="use only local folders and the local hub cache"
    )
    e.add_argument("--threads", type=int, help="torch CPU threads")
    e.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    e.set_defaults(func=cmd_enrich)
    return e


def cmd_enrich(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.batch_size < 1 or args.max_new_tokens < 1:
        raise ValueError("--batch-size and --max-new-tokens must be >= 1")
    prompt = Path(args.prompt).read_text(encoding="utf-8") if args.prompt else DEFAULT_PROMPT
    settings = EnrichSettings(
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        offline=args.offline,
        progress=not args.no_progress,
    )
    summary = run_enrich(
        args.data_path,
        args.dataset,
        generator=args.generator,
        clip=args.clip,
        prompt=prompt,
        settings=settings,
    )
    e = summary["enrichment"]
    if e["available"]:
        print(
            f"enrichment: {e['generated']} items generated, {e['reused']} from the cache "
            f"({e['model']})"
        )
    else:
        print(f"enrichment: NONE — {e['reason']}; LLMEMF will use the raw text")
    enc = summary["encoder"]
    print(
        f"encoder: {enc['model']} ({'CLIP' if enc['clip'] else 'fallback text encoder, no images'})"
    )
    for table, info in summary["tables"].items():
        reused = f" (reused features/{info['reused_from']})" if info.get("reused_from") else ""
        print(
            f"{args.data_path / args.dataset / 'features' / table}: {info['rows']} × "
            f"{info['dim']}{reused}"
        )
    if summary["tables"].get(TABLE_IMAGE) is None:
        print("no image vectors: LLMEMF runs w/o image")
    return 0
