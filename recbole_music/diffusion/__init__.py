"""Diffusion over user feature vectors: the process (schedule, q/p, loss, sampler) apart from
the denoiser network (the vectorized U-Net), as in diffusers' scheduler/model split.

The denoiser convention everywhere: ``denoiser(x_t, t, cond) -> tensor shaped like x_t``, with a
0-based LongTensor ``t`` ``[B]`` and ``cond`` possibly ``None`` (unconditional: side users).
"""

from recbole_music.diffusion.gaussian_diffusion import (
    MAX_BETA,
    PREDICTIONS,
    GaussianDiffusion,
    linear_beta_schedule,
)
from recbole_music.diffusion.vector_unet import ACTIVATIONS, VectorUNet, timestep_embedding

__all__ = [
    "ACTIVATIONS",
    "MAX_BETA",
    "PREDICTIONS",
    "GaussianDiffusion",
    "VectorUNet",
    "linear_beta_schedule",
    "timestep_embedding",
]
