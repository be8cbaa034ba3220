"""Item images: loading (a path relative to the dataset folder, or a URL) and the optional
colour-histogram descriptor.

The descriptor is a HAND-MADE image feature (a 4×4×4 joint RGB histogram), NOT a multimodal
LLM. It exists for the default, text-only encoder, which cannot see images at all: with
``--image-descriptor color-hist`` the item vector becomes ``[text / |text|, w · hist / |hist|]``
(dim + 64; zeros for items without a usable image). Whether it helps is measured on the demo
(bench/results/feature_image_descriptor.md); the default is ``none`` — text only, stated in the
log and the manifest.
"""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import numpy as np

HIST_BINS = 4
HIST_DIM = HIST_BINS**3


class ImageLoader:
    def __init__(self, base_dir: Path, timeout: float = 20.0):
        self.base_dir = Path(base_dir)
        self.timeout = timeout

    def load(self, ref: str):
        """(PIL RGB image or None, status, reason). status: ``none`` (no image given), ``ok``,
        ``unreadable`` (file missing, not an image, download failed)."""
        from PIL import Image, UnidentifiedImageError

        ref = (ref or "").strip()
        if not ref:
            return None, "none", ""
        try:
            if ref.startswith(("http://", "https://")):
                with urllib.request.urlopen(ref, timeout=self.timeout) as resp:
                    data = resp.read()
                img = Image.open(io.BytesIO(data))
            else:
                path = self.base_dir / ref
                img = Image.open(path)
            img.load()  # decode now: a truncated file fails here, not inside the model
            return img.convert("RGB"), "ok", ""
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            return None, "unreadable", f"{type(exc).__name__}: {exc}"


def color_histogram(img, bins: int = HIST_BINS) -> np.ndarray:
    """Joint RGB histogram with ``bins`` levels per channel, L1-normalised: [bins**3]."""
    a = np.asarray(img.convert("RGB"), dtype=np.int64).reshape(-1, 3)
    q = np.minimum(a * bins // 256, bins - 1)
    codes = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    h = np.bincount(codes, minlength=bins**3).astype(np.float32)
    return h / max(h.sum(), 1.0)


def with_descriptor(text_vecs: np.ndarray, hists: np.ndarray, weight: float) -> np.ndarray:
    """``[text / |text|, weight · hist / |hist|]`` (a zero histogram stays zero)."""
    t = text_vecs / np.maximum(np.linalg.norm(text_vecs, axis=1, keepdims=True), 1e-12)
    h = hists / np.maximum(np.linalg.norm(hists, axis=1, keepdims=True), 1e-12)
    return np.concatenate([t, weight * h], axis=1).astype(np.float32)
