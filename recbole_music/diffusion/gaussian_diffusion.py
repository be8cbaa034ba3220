"""The Gaussian diffusion process (DDPM) over d-dim user feature vectors — the network apart.

Like diffusers' noise schedulers, this module holds the schedule, the forward process
(``q_sample``), the true posterior (``q_posterior``), the loss and the reverse sampling loop, and
knows nothing about the denoiser: that is any callable ``denoiser(x_t, t, cond) -> tensor shaped
like x_t`` (``cond`` may be ``None``: the unconditional case, MuSiC's side users).
``GaussianDiffusion`` is an ``nn.Module`` only so that its schedule buffers follow ``.to(device)``
and land in checkpoints; it has no parameters.

Time indexing
    ``t`` is 0-based: ``t = 0`` is the first noising step, ``t = steps - 1`` the last, so
    ``x_t`` below is the vector after ``t + 1`` noising steps (``x_{t+1}`` in the paper's
    1-based notation) and ``ᾱ_t = prod_{s<=t} (1 - β_s)``. The denoiser receives this same
    0-based ``t``.

Schedule (linear β, our choice of range)
    DDPM's range ``β: 1e-4 → 0.02`` was set for ``T = 1000`` steps; with the paper's
    ``T ∈ {2, 5, 10, 20, 50}`` it would leave ``x_T`` almost un-noised (ᾱ_T ≈ 0.95 at T = 10)
    while sampling starts from pure noise. By default we therefore rescale the DDPM range to
    ``T`` steps, ``β_start = 1e-4 · 1000 / T`` and ``β_end = 0.02 · 1000 / T``, both capped at
    ``MAX_BETA = 0.999`` (below 1, as in Improved DDPM), and interpolate linearly in between
    (for ``T = 1`` the single β is ``β_end``). For every ``T <= 20`` the cap binds, so the last
    step destroys (almost) all signal and ``x_T`` matches the sampler's starting N(0, I):

    ====  ==========  =========  ==========
    T     β_start     β_end      ᾱ_T
    ====  ==========  =========  ==========
    2     0.05        0.999      9.5e-04
    5     0.02        0.999      8.7e-05
    10    0.01        0.999      8.7e-07
    20    0.005       0.999      5.9e-11
    50    0.002       0.4        7.7e-06
    1000  1e-4        0.02       4.0e-05   (DDPM itself)
    ====  ==========  =========  ==========

    Explicit ``beta_start`` / ``beta_end`` override the default (both must lie in (0, 1)).
    All schedule terms are computed in float64 and stored as float32 buffers.

Reverse process
    ``p(x_{t-1} | x_t, c) = N(μ̃_t(x̂_0, x_t), β_t I)``: the mean is the true posterior mean at
    the denoiser's estimate ``x̂_0`` of ``x_0``; the variance is fixed to ``σ_t² = β_t`` (DDPM,
    as the paper); no noise is added at the last reverse step (``t = 0``), whose posterior mean
    is exactly ``x̂_0``.

Prediction target
    ``prediction="x0"``: the network outputs ``x̂_0`` and the loss is ``MSE(x̂_0, x_0)`` (the
    paper's Eq. 10). ``prediction="eps"``: it outputs the noise ``ε̂`` and the loss is
    ``MSE(ε̂, ε)``; ``x̂_0 = (x_t - sqrt(1-ᾱ_t) ε̂) / sqrt(ᾱ_t)``.
    Caveat, measured in ``tests/test_diffusion.py``: with the default schedule the last step
    has ``α = 1 - β ≈ 0.001``, so at the first reverse step an ε error is amplified ~30× in the
    mean (``1/sqrt(α)``; the x̂_0 error is ``1/sqrt(ᾱ_T)`` ≈ 1000×) — the known weakness of ε
    prediction near zero terminal SNR. On the toy task, after the same training, x0 prediction
    samples within ~5 % of the target spread (RMSE), ε prediction only within 50–115 %
    (it swings with the training noise). Use ε with a
    milder ``beta_end`` (e.g. 0.5: ᾱ_T ≈ 0.04 at T = 10) or more training.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

SAMPLING_VARIANCES = ("beta", "posterior")
__all__ = [
    "MAX_BETA",
    "PREDICTIONS",
    "SAMPLING_VARIANCES",
    "GaussianDiffusion",
    "linear_beta_schedule",
]

MAX_BETA = 0.999
PREDICTIONS = ("x0", "eps")

Denoiser = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int | float) or steps != int(steps):
        raise ValueError(f"diffusion steps must be a whole number >= 1, got {steps!r}")
    steps = int(steps)
    if steps < 1:
        raise ValueError(
            f"diffusion steps must be >= 1, got {steps}: a diffusion with no noising step "
            "has nothing to learn or sample (the paper uses T in {2, 5, 10, 20, 50})"
        )
    return steps


def linear_beta_schedule(
    steps: int, beta_start: float | None = None, beta_end: float | None = None
) -> torch.Tensor:
    """The linear β schedule as float64 ``[steps]`` (defaults: DDPM's range rescaled to ``steps``)."""
    steps = _check_steps(steps)
    scale = 1000.0 / steps
    start = min(1e-4 * scale, MAX_BETA) if beta_start is None else float(beta_start)
    end = min(0.02 * scale, MAX_BETA) if beta_end is None else float(beta_end)
    for name, value in (("beta_start", start), ("beta_end", end)):
        if not 0.0 < value < 1.0 or math.isnan(value):
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    if steps == 1:
        return torch.tensor([end], dtype=torch.float64)
    return torch.linspace(start, end, steps, dtype=torch.float64)


class GaussianDiffusion(nn.Module):
    """DDPM forward/reverse process over vectors ``[B, d]`` (any trailing shape works)."""

    def __init__(
        self,
        steps: int,
        beta_start: float | None = None,
        beta_end: float | None = None,
        prediction: str = "x0",
        sampling_variance: str = "beta",
    ):
        super().__init__()
        self.steps = _check_steps(steps)
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if sampling_variance not in SAMPLING_VARIANCES:
            raise ValueError(
                f"sampling_variance must be one of {SAMPLING_VARIANCES}, got {sampling_variance!r}"
            )
        self.prediction = prediction
        # σ_t² of a reverse step: β_t (DDPM's, and the paper's) or the true posterior variance
        # β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t). The two agree for T = 1000; for a few steps β_t
        # is many times β̃_t, so the last steps hand the denoiser far noisier inputs than the
        # forward process it was trained on ever makes.
        self.sampling_variance = sampling_variance

        betas = linear_beta_schedule(self.steps, beta_start, beta_end)  # float64
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        post_var = betas * (1.0 - abar_prev) / (1.0 - abar)  # 0 at t = 0
        # log of the posterior variance, its t = 0 entry (0) replaced as in DDPM's code
        first = post_var[1] if self.steps > 1 else betas[0]
        post_log_var = torch.log(torch.cat([first.reshape(1), post_var[1:]]))
        terms = {
            "betas": betas,
            "alphas_cumprod": abar,
            "alphas_cumprod_prev": abar_prev,
            "sqrt_alphas_cumprod": abar.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1.0 - abar).sqrt(),
            "sqrt_recip_alphas_cumprod": (1.0 / abar).sqrt(),
            "sqrt_recipm1_alphas_cumprod": (1.0 / abar - 1.0).sqrt(),
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": post_log_var,
            "posterior_mean_coef1": betas * abar_prev.sqrt() / (1.0 - abar),
            "posterior_mean_coef2": (1.0 - abar_prev) * alphas.sqrt() / (1.0 - abar),
            "log_betas": torch.log(betas),
        }
        for name, value in terms.items():
            self.register_buffer(name, value.to(torch.float32))

    # Declared for type checkers; the real tensors are the buffers registered above.
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    sqrt_recip_alphas_cumprod: torch.Tensor
    sqrt_recipm1_alphas_cumprod: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_log_variance_clipped: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor
    log_betas: torch.Tensor

    def extra_repr(self) -> str:
        return (
            f"steps={self.steps}, prediction={self.prediction!r}, "
            f"beta=[{self.betas[0].item():.4g}, {self.betas[-1].item():.4g}], "
            f"alpha_bar_T={self.alphas_cumprod[-1].item():.3g}"
        )

    # ------------------------------------------------------------------ helpers
    def _t(self, t, x: torch.Tensor) -> torch.Tensor:
        """``t`` as a LongTensor ``[B]`` on x's device (an int or 0-d tensor is broadcast)."""
        t = torch.as_tensor(t, device=x.device)
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise TypeError(f"t must hold integer step indices, got dtype {t.dtype}")
        t = t.long()
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(
                f"t must have shape [{x.shape[0]}] (one step per row), got {tuple(t.shape)}"
            )
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.steps):
            raise ValueError(
                f"t must lie in [0, {self.steps - 1}], got [{int(t.min())}, {int(t.max())}]"
            )
        return t

    @staticmethod
    def _extract(buf: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``buf[t]`` shaped ``[B, 1, ...]`` to broadcast against x, in x's dtype."""
        out = buf.to(x.device)[t].to(x.dtype)
        return out.reshape(t.shape[0], *([1] * (x.dim() - 1)))

    @staticmethod
    def _randn(shape, device, dtype, generator) -> torch.Tensor:
        if generator is None:
            return torch.randn(shape, device=device, dtype=dtype)
        # draw on the generator's device (a CPU generator may drive CUDA sampling), then move
        return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(
            device
        )

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x0: torch.Tensor, t, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε`` (closed form of t + 1 noising steps)."""
        t = self._t(t, x0)
        if noise is None:
            noise = torch.randn_like(x0)
        return (
            self._extract(self.sqrt_alphas_cumprod, t, x0) * x0
            + self._extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise
        )

    def q_posterior(
        self, x0: torch.Tensor, xt: torch.Tensor, t
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and (clipped) log-variance of ``q(x_{t-1} | x_t, x_0)``.

        At ``t = 0`` the mean is ``x0`` exactly and the variance 0 (the log-variance holds the
        ``t = 1`` value, as in DDPM, so it stays finite). Variance terms are shaped ``[B, 1, ...]``.
        """
        t = self._t(t, xt)
        mean = (
            self._extract(self.posterior_mean_coef1, t, xt) * x0
            + self._extract(self.posterior_mean_coef2, t, xt) * xt
        )
        var = self._extract(self.posterior_variance, t, xt)
        log_var = self._extract(self.posterior_log_variance_clipped, t, xt)
        return mean, var, log_var

    # ------------------------------------------------------------------ network side
    def predict_x0_from_eps(self, xt: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        t = self._t(t, xt)
        return (
            self._extract(self.sqrt_recip_alphas_cumprod, t, xt) * xt
            - self._extract(self.sqrt_recipm1_alphas_cumprod, t, xt) * eps
        )

    def _net(self, denoiser: Denoiser, xt: torch.Tensor, t: torch.Tensor, cond) -> torch.Tensor:
        out = denoiser(xt, t, cond)
        if out.shape != xt.shape:
            raise ValueError(
                f"the denoiser returned shape {tuple(out.shape)}, expected {tuple(xt.shape)} "
                "(shaped like x_t)"
            )
        return out

    def predict_x0(self, denoiser: Denoiser, xt: torch.Tensor, t, cond=None) -> torch.Tensor:
        """The denoiser's estimate of ``x_0``, whatever it predicts (``x0`` or ``eps``)."""
        t = self._t(t, xt)
        out = self._net(denoiser, xt, t, cond)
        if self.prediction == "x0":
            return out
        return self.predict_x0_from_eps(xt, t, out)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the denoiser should output at ``x_t = q_sample(x0, t, noise)``: x0 or ε."""
        return x0 if self.prediction == "x0" else noise

    def training_loss(
        self,
        denoiser: Denoiser,
        x0: torch.Tensor,
        cond=None,
        t=None,
        noise: torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """MSE between the denoiser's output and its target (``x0`` or ``ε``) at a noised ``x_t``.

        ``t`` defaults to uniform over ``[0, steps)`` per row, ``noise`` to N(0, I) (both from
        torch's global RNG). ``reduction``: ``"mean"`` (a scalar), ``"sum"``, or ``"none"``
        (one value per row, ``[B]``: the mean over the feature dims — to weight or mask rows).
        """
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        if t is None:
            t = torch.randint(0, self.steps, (x0.shape[0],), device=x0.device)
        t = self._t(t, x0)
        if noise is None:
            noise = torch.randn_like(x0)
        xt = self.q_sample(x0, t, noise)
        out = self._net(denoiser, xt, t, cond)
        target = self.training_target(x0, noise)
        per_elem = (out - target).pow(2)
        if reduction == "mean":
            return per_elem.mean()
        if reduction == "sum":
            return per_elem.sum()
        return per_elem.reshape(per_elem.shape[0], -1).mean(dim=1)

    # ------------------------------------------------------------------ reverse process
    def p_mean_variance(
        self, denoiser: Denoiser, xt: torch.Tensor, t, cond=None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean of ``p(x_{t-1} | x_t, c)`` (posterior at x̂_0), its variance β_t and x̂_0."""
        t = self._t(t, xt)
        x0_hat = self.predict_x0(denoiser, xt, t, cond)
        mean, posterior_var, _ = self.q_posterior(x0_hat, xt, t)
        if self.sampling_variance == "posterior":
            return mean, posterior_var, x0_hat
        return mean, self._extract(self.betas, t, xt), x0_hat

    def p_sample(
        self,
        denoiser: Denoiser,
        xt: torch.Tensor,
        t,
        cond=None,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One DDPM reverse step ``x_t → x_{t-1}``: ``μ̃ + sqrt(β_t) z``, no noise where t = 0.

        ``noise`` (optional) supplies ``z``; otherwise it is drawn from ``generator``.
        """
        t = self._t(t, xt)
        mean, var, _ = self.p_mean_variance(denoiser, xt, t, cond)
        if noise is None:
            noise = self._randn(xt.shape, xt.device, xt.dtype, generator)
        nonzero = (t != 0).to(xt.dtype).reshape(-1, *([1] * (xt.dim() - 1)))
        return mean + nonzero * var.sqrt() * noise

    def sample_with_grad(
        self, denoiser: Denoiser, x_T: torch.Tensor, cond=None, grad_steps: int = 0
    ) -> torch.Tensor:
        """All reverse steps from ``x_T``, *with* gradients, for a loss on generated samples
        (MuSiC's rating loss on the generated u_T); the step noise comes from torch's global RNG.

        ``grad_steps`` > 0 keeps gradients through the last ``grad_steps`` steps only (the
        earlier ones run without a graph): truncated backpropagation through the sampler, as
        DRaFT-K fine-tunes diffusion models on a differentiable reward (Clark et al., ICLR
        2024), which cuts the cost and the exploding gradients of the full chain. 0 = all steps.
        """
        if grad_steps < 0:
            raise ValueError(f"grad_steps must be >= 0 (0 = all steps), got {grad_steps}")
        x = x_T
        for step in reversed(range(self.steps)):
            t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
            noise = torch.randn_like(x) if step > 0 else torch.zeros_like(x)
            with torch.set_grad_enabled(
                torch.is_grad_enabled() and (grad_steps == 0 or step < grad_steps)
            ):
                x = self.p_sample(denoiser, x, t, cond, noise=noise)
        return x

    @torch.no_grad()
    def sample(
        self,
        denoiser: Denoiser,
        n: int | None = None,
        cond: torch.Tensor | None = None,
        dim: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run all ``steps`` reverse steps from ``x_T ~ N(0, I)`` (or the given ``x_T``).

        Rows: ``x_T``'s, else ``n``, else ``cond``'s. Width: ``x_T``'s, else ``dim``, else the
        denoiser's ``dim`` attribute, else ``cond``'s width. ``batch_size`` bounds how many rows
        go through the denoiser at once; the noise of each step is drawn for all rows together
        (steps outer, batches inner), so the result does not depend on ``batch_size``, and a
        seeded ``generator`` makes it deterministic. The denoiser's train/eval mode is left as
        is (call ``.eval()`` first if it has dropout).
        """
        if x_T is not None:
            shape = tuple(x_T.shape)
        else:
            if n is None:
                if cond is None:
                    raise ValueError("sample needs n, cond or x_T to know how many rows to draw")
                n = cond.shape[0]
            if dim is None:
                dim = getattr(denoiser, "dim", None)
            if dim is None:
                if cond is None:
                    raise ValueError("sample needs dim (or x_T) to know the feature width")
                dim = cond.shape[-1]
            shape = (int(n), int(dim))
        if cond is not None and cond.shape[0] != shape[0]:
            raise ValueError(f"cond has {cond.shape[0]} rows but {shape[0]} samples are asked for")
        if x_T is not None:
            device, dtype = x_T.device, x_T.dtype
        elif cond is not None:
            device, dtype = cond.device, cond.dtype
        else:
            device, dtype = self.betas.device, torch.float32
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

        x = x_T.clone() if x_T is not None else self._randn(shape, device, dtype, generator)
        rows = shape[0]
        if rows == 0:
            return x
        bs = rows if batch_size is None else min(int(batch_size), rows)
        for step in reversed(range(self.steps)):
            z = self._randn(shape, device, dtype, generator) if step > 0 else None
            t_all = torch.full((rows,), step, dtype=torch.long, device=device)
            out = torch.empty_like(x)
            for lo in range(0, rows, bs):
                hi = min(lo + bs, rows)
                out[lo:hi] = self.p_sample(
                    denoiser,
                    x[lo:hi],
                    t_all[lo:hi],
                    None if cond is None else cond[lo:hi],
                    noise=torch.zeros_like(x[lo:hi]) if z is None else z[lo:hi],
                )
            x = out
        return x
