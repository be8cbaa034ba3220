"""Step 1 of ``dataset_prep enrich``: a causal LM writes keywords, a summary and a likely buyer's
interests for each item, from its title and domain. The prompt, the parsing of the answer, the
per-item cache (keyed by model identity, prompt hash and item text hash, appended a batch at a
time so an interrupted run resumes) and the generator itself; dataset_prep/enrich.py runs the
whole command."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from dataset_prep.features.encoders import _torch_dtype
from dataset_prep.features.pipeline import model_identity
from dataset_prep.features.prompts import PROMPTS
from dataset_prep.features.sources import item_text, read_item_table
from dataset_prep.layout import AUX, TARGET
from dataset_prep.progress import Progress, quiet_library_bars

logger = logging.getLogger("dataset_prep.enrich")  # the command's logger: one name in the log

DEFAULT_GENERATOR = "Qwen/Qwen2.5-0.5B-Instruct"
CACHE_FILE = "enriched_items.jsonl"
PROMPTS_FILE = "enriched_items.prompts.json"

DEFAULT_PROMPT = (
    "You describe products of an online shop for a recommender system.\n"
    "Domain: {domain}\n"
    "Product: {title}\n"
    "Answer in exactly three lines:\n"
    "Keywords: five to eight comma-separated keywords\n"
    "Summary: one short sentence on what the product is\n"
    "Interests: the interests of a customer likely to buy it\n"
)
FIELDS = ("keywords", "summary", "interests")
# The raw item text is the `plain` prompt set's (dataset_prep features' text for sentence
# encoders), so an items table of the same encoder can stand in for item_text_raw.
RAW_PROMPT_SET = "plain"


class GeneratorUnavailable(RuntimeError):
    """The generation model cannot be loaded here (no folder, no hub, not a causal LM)."""


@dataclass
class EnrichSettings:
    max_new_tokens: int = 96
    batch_size: int = 8
    device: str = "cpu"
    dtype: str = "float32"
    offline: bool = False  # only local folders and the local hub cache
    progress: bool = True

    def generation(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "do_sample": False}


@dataclass(frozen=True)
class ItemText:
    id: str
    title: str
    domain: str  # the domain's label (e.g. "food"), for the prompt
    raw: str  # the plain item text of `dataset_prep features` (what raw-text vectors embed)
    image: str


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- the items ---------------------------------------------------------------------------------
def domain_labels(folder: Path, name: str) -> dict[str, str]:
    """{"aux": "food", "target": "kitchen"} from the dataset's YAML (``aux``/``target`` when
    it names none)."""
    labels = {AUX: AUX, TARGET: TARGET}
    path = folder / f"{name}.yaml"
    if path.is_file():
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        for role in labels:
            if data.get(f"{role}_domain"):
                labels[role] = str(data[f"{role}_domain"]).replace("_", " ")
    return labels


def item_texts(folder: Path, name: str) -> list[ItemText]:
    labels = domain_labels(folder, name)
    rows = read_item_table(folder, name)
    out = []
    for r in rows:
        raw = item_text(r, PROMPTS[RAW_PROMPT_SET])
        parts = [r.get(k, "").strip() for k in ("title", "categories", "description")]
        title = parts[0] or ". ".join(p for p in parts if p)[:200]
        domain = labels.get(r.get("domain", ""), r.get("domain", ""))
        out.append(ItemText(r["item_id"], title, domain, raw, r.get("image", "").strip()))
    out.sort(key=lambda item: item.id)
    return out


# -- prompting and parsing -----------------------------------------------------------------------
def check_prompt(template: str) -> str:
    import string

    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if not fields <= {"title", "domain"} or "title" not in fields:
        raise ValueError(
            f"enrichment prompt: it must use {{title}} (and may use {{domain}}), found "
            f"{sorted(fields)}"
        )
    return template


def parse_enrichment(text: str) -> dict:
    """{keywords, summary, interests, parsed}: the three labelled lines of the answer. An answer
    that does not follow the format is kept whole as the summary (``parsed: False``)."""
    found = {}
    pattern = re.compile(r"^\s*[-*]?\s*(keywords|summary|interests)\s*[:\-]\s*(.*)$", re.I)
    for line in text.splitlines():
        m = pattern.match(line)
        if m and m.group(1).lower() not in found:
            found[m.group(1).lower()] = m.group(2).strip()
    if not any(found.values()):
        return {"keywords": "", "summary": " ".join(text.split()), "interests": "", "parsed": False}
    return {**{f: found.get(f, "") for f in FIELDS}, "parsed": True}


def enriched_text(raw: str, parsed: dict) -> str:
    """What the text tower embeds: the raw text, then the LLM's answer."""
    lines = [raw]
    for field in FIELDS:
        if parsed.get(field):
            lines.append(f"{field.capitalize()}: {parsed[field]}")
    return "\n".join(lines)


# -- the cache -----------------------------------------------------------------------------------
class EnrichmentCache:
    """``features/enriched_items.jsonl``: one JSON record per generated answer; the newest record
    of an (item, model, prompt, item text) wins."""

    def __init__(self, features_dir: Path):
        self.path = Path(features_dir) / CACHE_FILE
        self.prompts_path = Path(features_dir) / PROMPTS_FILE
        self.records: dict[tuple[str, str, str, str], dict] = {}
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as handle:
                for line_no, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:  # a line cut short by an interruption
                        logger.warning("%s:%d: unreadable line skipped", self.path, line_no)
                        continue
                    self.records[self._key(rec)] = rec

    @staticmethod
    def _key(rec: dict) -> tuple[str, str, str, str]:
        return rec["item_id"], rec["model_key"], rec["prompt_sha"], rec["source_sha"]

    def get(self, item_id: str, model_key: str, prompt_sha: str, source_sha: str) -> dict | None:
        return self.records.get((item_id, model_key, prompt_sha, source_sha))

    def add(self, records: list[dict], template: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        prompts = json.loads(self.prompts_path.read_text()) if self.prompts_path.is_file() else {}
        if sha256(template) not in prompts:
            prompts[sha256(template)] = template
            tmp = self.prompts_path.with_name(self.prompts_path.name + ".tmp")
            tmp.write_text(json.dumps(prompts, indent=2) + "\n")
            os.replace(tmp, self.prompts_path)
        with open(self.path, "a", encoding="utf-8") as handle:
            for rec in records:
                handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
                self.records[self._key(rec)] = rec
            handle.flush()
            os.fsync(handle.fileno())


# -- the generation model ------------------------------------------------------------------------
def is_local(model: str) -> bool:
    """Whether ``model`` names a local folder (else a hub id)."""
    return Path(model).expanduser().exists()


def model_key(model: str) -> str:
    """What identifies the weights in the cache: a local folder's config/weights identity, or
    the hub id."""
    if is_local(model):
        path = str(Path(model).expanduser().resolve())
        return "sha256:" + sha256(json.dumps(model_identity(path), sort_keys=True))
    return f"hub:{model}"


def _from_pretrained(cls, model: str, offline: bool, **kwargs):
    """``cls.from_pretrained`` on a local folder, or a hub id (the local hub cache first)."""
    if is_local(model):
        return cls.from_pretrained(str(Path(model).expanduser()), **kwargs)
    if model.count("/") != 1 or model.startswith((".", "/", "~")):
        raise OSError(f"{model}: no such model folder")
    try:
        return cls.from_pretrained(model, local_files_only=True, **kwargs)
    except OSError:
        if offline or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise
    return cls.from_pretrained(model, **kwargs)


class TextGenerator:
    """A causal LM (``AutoModelForCausalLM``) answering the enrichment prompt, greedy."""

    def __init__(self, model: str, settings: EnrichSettings):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_library_bars()
        self.model_name = model
        self.settings = settings
        try:
            self.tokenizer = _from_pretrained(AutoTokenizer, model, settings.offline)
            self.model = _from_pretrained(
                AutoModelForCausalLM, model, settings.offline, dtype=_torch_dtype(settings.dtype)
            )
        except (OSError, ValueError, KeyError) as exc:
            raise GeneratorUnavailable(
                f"generation model '{model}' cannot be loaded here ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from exc
        self.model = self.model.to(settings.device).eval()
        self.tokenizer.padding_side = "left"  # generation continues right after the prompt
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token

    def render(self, prompt: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
        return prompt

    def generate(self, prompts: list[str]) -> list[str]:
        import torch

        enc = self.tokenizer(
            [self.render(p) for p in prompts], return_tensors="pt", padding=True
        ).to(self.settings.device)
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=self.settings.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]


def enrich_items(
    items: list[ItemText],
    features_dir: Path,
    generator_name: str,
    template: str,
    settings: EnrichSettings,
    generator=None,
) -> dict:
    """Fill the cache for ``items`` (text from cache where it holds this model and prompt).

    Returns {"records": {item_id: record}, "generated": n, "reused": n, "skipped_no_text": n,
    "available": bool, "reason": str}. ``generator`` (a loaded :class:`TextGenerator`) is
    optional: it is loaded only when something is missing.
    """
    cache = EnrichmentCache(features_dir)
    key, prompt_sha = model_key(generator_name), sha256(template)
    todo, records, skipped = [], {}, 0
    for item in items:
        if not item.title:
            skipped += 1
            continue
        rec = cache.get(item.id, key, prompt_sha, sha256(item.title + "\x1f" + item.domain))
        if rec is None:
            todo.append(item)
        else:
            records[item.id] = rec
    reused = len(records)
    out = {
        "records": records,
        "generated": 0,
        "reused": reused,
        "skipped_no_text": skipped,
        "available": True,
        "reason": "",
        "model": generator_name,
        "model_key": key,
        "prompt_sha": prompt_sha,
    }
    if not todo:
        return out
    if generator is None:
        try:
            generator = TextGenerator(generator_name, settings)
        except GeneratorUnavailable as exc:
            out.update(available=False, reason=str(exc))
            return out
    bar = Progress(len(todo), "enrich", "items", enabled=settings.progress)
    try:
        for start in range(0, len(todo), settings.batch_size):
            batch = todo[start : start + settings.batch_size]
            answers = generator.generate(
                [template.format(title=i.title, domain=i.domain) for i in batch]
            )
            now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            new = []
            for item, answer in zip(batch, answers):
                parsed = parse_enrichment(answer)
                new.append(
                    {
                        "item_id": item.id,
                        "model": generator_name,
                        "model_key": key,
                        "prompt_sha": prompt_sha,
                        "source_sha": sha256(item.title + "\x1f" + item.domain),
                        "generation": settings.generation(),
                        "output": answer,
                        **{f: parsed[f] for f in FIELDS},
                        "parsed": parsed["parsed"],
                        "written_at": now,
                    }
                )
            cache.add(new, template)
            records.update((r["item_id"], r) for r in new)
            out["generated"] += len(new)
            bar.update(len(batch))
    finally:
        bar.close()
    return out
