"""MuSiC: multimodal features + side users + conditional diffusion (docs/music.md; the paper §3).

A user's target-domain feature ``u_T`` and an item's feature ``v_i`` are d-dim; a rating is
``<u_T, v_i>`` (plus the target mean and an item bias when ``rating_bias``). Users whose target
interactions are in training have their own ``u_T``; a held-out (cold-start) user's ``u_T`` is
*generated*: pure noise denoised by the vectorised U-Net over T steps, conditioned on the user's
auxiliary-domain feature ``u_A``. With ``condition_residual`` (ours) the U-Net predicts the
residual ``u_T − u_A``: its x̂_0 is ``u_A`` plus the network's output.

Training (``MuSiCTrainer``) has two stages, each with its own loss method here:
1. :meth:`side_user_loss` — side users: unconditional diffusion loss on their ``u_T`` (and, if
   ``stage1_rating_loss``, their target ratings, which train the features);
2. :meth:`joint_loss` — training overlap users: their target ratings + ``diffusion_weight`` ×
   conditional diffusion loss (``c = u_A``), plus the auxiliary ratings that train ``u_A``, plus
   (ours, ``generated_rating_weight``) the target ratings scored with a ``u_T`` *generated* from
   ``u_A`` by the full reverse process, so the denoiser learns what held-out users need.

User vectors (``user_vectors``): the paper's LLM vectors of a user's reviews, vectors built from
the user's training items and ratings (``history``; data without reviews), or both side by side.
With ``user_bias_coordinate`` the items' last feature coordinate is 1, so ``u_T`` carries the
user's rating bias and the diffusion generates it too.

Ablations (paper Table 3) are settings: ``feature_source: collaborative`` (w/o MLLM),
``use_diffusion: False`` (w/o diffusion: a cold-start user's ``u_A`` is used as their ``u_T``,
with no cross-domain mapping learnt: training is MuSiC's minus the diffusion terms),
``use_side_users: False`` (w/o side: stage 1 skipped). With ``use_diffusion: False`` and
``direct_transfer: True`` (ours, a stronger baseline than the paper's ablation) overlapping users'
target ratings are scored with ``u_A`` in training, so the user MLP itself is fitted as a
deterministic auxiliary → target regression.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import torch
import torch.nn.functional as F
import yaml
from recbole.utils import InputType, ModelType
from torch import nn

from recbole_music.config import setting
from recbole_music.data.dataset import SplitPart, UserRole
from recbole_music.diffusion import GaussianDiffusion, VectorUNet
from recbole_music.model.music.features import (
    CONTENT_SOURCES,
    INTERACTION_SOURCES,
    FeatureSource,
    cached_rows,
    resolve_feature_source,
    resolve_user_vectors,
    rows_of,
)
from recbole_music.model.music.interaction_vectors import NORMALIZATIONS
from recbole_music.model.music.user_history_vectors import (
    HISTORY_SCALES,
    checked_history_dropout,
)
from recbole_music.model.target_domain_base import TargetDomainRecommender

logger = logging.getLogger()


def size_candidates_of(
    value, own_normalization: str
) -> list[tuple[int, int, str, str | None, float | None]]:
    """``interaction_size_search`` as (interaction_vector_dim, embedding_size, normalization,
    history scale, history dropout) tuples: an entry is ``[dim, size]`` (the run's own
    ``interaction_vector_normalization``), ``[dim, size, normalization]``, ``[dim, size,
    normalization, history_vector_scale]`` or ``[..., history_vector_scale, history_dropout]``;
    the scale and the dropout are None where the entry names none."""
    if isinstance(value, str):  # the command line's unquoted form, [[64, 32, symmetric]]
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass  # refused below, with the form
    entries = [] if value is None else value
    try:
        parsed = [
            (
                int(entry[0]),
                int(entry[1]),
                str(entry[2]) if len(entry) >= 3 else own_normalization,
                str(entry[3]) if len(entry) >= 4 else None,
                checked_history_dropout(entry[4]) if len(entry) == 5 else None,
            )
            for entry in entries
            if 2 <= len(entry) <= 5
        ]
    except (TypeError, ValueError, KeyError, IndexError):
        parsed = None
    if (
        parsed is None
        or len(parsed) != len(entries)
        or any(
            a <= 0 or b <= 0 or n not in NORMALIZATIONS or s not in (None, *HISTORY_SCALES)
            for a, b, n, s, _ in parsed
        )
    ):
        raise ValueError(
            "interaction_size_search must be a list of [interaction_vector_dim, embedding_size] "
            "pairs of positive integers, each optionally with an interaction_vector_normalization "
            f"({' | '.join(NORMALIZATIONS)}) third, a history_vector_scale "
            f"({' | '.join(HISTORY_SCALES)}) fourth and a history_dropout (a number in [0, 1)) "
            f"fifth, e.g. [[128, 64], [64, 32, symmetric]], or [] for none; got {value!r}"
        )
    return parsed


# implicit data: bce = each positive and each sampled negative scored apart (the paper's rating
# loss turned binary); softmax = a positive against its sampled negatives (sampled softmax)
RANKING_LOSSES = ("bce", "softmax")


def _products(user_feat: torch.Tensor, item_feat: torch.Tensor) -> torch.Tensor:
    """<u_b, v_b> for item features [B, d], or <u_b, v_bn> for [B, n, d]: a batched product,
    no [B * n, d] copy of the users (nor its backward)."""
    if item_feat.dim() == 2:
        return (user_feat * item_feat).sum(-1)
    return torch.einsum("bd,bnd->bn", user_feat, item_feat)


class MuSiC(TargetDomainRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.GENERAL

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.predicts_ratings = self.explicit
        dim = int(config["embedding_size"])
        self.use_diffusion = bool(config["use_diffusion"])
        self.direct_transfer = bool(config["direct_transfer"]) and not self.use_diffusion
        self.use_side_users = bool(config["use_side_users"])
        self.stage1_rating_loss = bool(config["stage1_rating_loss"])
        self.diffusion_weight = float(config["diffusion_weight"])
        self.generated_rating_weight = float(setting(config, "generated_rating_weight"))
        self.generated_rating_grad_steps = int(setting(config, "generated_rating_grad_steps"))
        self.diffusion_feature_scaling = bool(config["diffusion_feature_scaling"])
        self.register_buffer("feature_scale", torch.ones(()))
        self.register_buffer("feature_scale_steps", torch.zeros((), dtype=torch.long))
        self.aux_rating_weight = float(config["aux_rating_weight"])
        self.condition_residual = bool(config["condition_residual"])
        self.num_negatives = int(config["num_negatives"])
        self.negatives_shared_by = int(setting(config, "negatives_shared_by"))
        if self.negatives_shared_by < 1:
            raise ValueError(f"negatives_shared_by must be >= 1, got {self.negatives_shared_by}")
        self._step_item_table = None  # (rows_of(ids), features [+ bias]) during a shared step
        self.ranking_loss = config["ranking_loss"]
        if self.ranking_loss not in RANKING_LOSSES:
            raise ValueError(
                f"ranking_loss must be one of {RANKING_LOSSES}, got {self.ranking_loss!r}"
            )
        self.detach_diffusion_target = bool(config["detach_diffusion_target"])
        self.sample_batch_size = int(setting(config, "sample_batch_size"))

        self.user_vectors = resolve_user_vectors(config["user_vectors"], dataset)
        self.feature_source = resolve_feature_source(
            config["feature_source"],
            self.user_vectors,
            dataset,
            int(config["interaction_vector_dim"]),
        )
        self.features = FeatureSource(config, dataset, self.feature_source, dim, self.user_vectors)
        self.interaction_size_search = size_candidates_of(
            setting(config, "interaction_size_search"),
            setting(config, "interaction_vector_normalization"),
        )
        self.diffusion = GaussianDiffusion(
            int(config["diffusion_steps"]),
            beta_start=config["beta_start"],
            beta_end=config["beta_end"],
            prediction=setting(config, "diffusion_prediction"),
            sampling_variance=setting(config, "sampling_variance"),
        )
        if self.condition_residual and self.diffusion.prediction != "x0":
            raise ValueError(
                "condition_residual: True adds u_A to the denoiser's x0 prediction; it needs "
                f"diffusion_prediction: x0 (got {self.diffusion.prediction!r}). Set "
                "condition_residual: False to predict eps."
            )
        self.denoiser = VectorUNet(
            dim,
            hidden_dims=tuple(config["unet_hidden_dims"]),
            time_dim=int(config["unet_time_dim"]),
            cond_dim=dim,
            dropout=float(setting(config, "unet_dropout")),
        )
        self.rating_bias = bool(config["rating_bias"])
        self.rating_clip = bool(setting(config, "rating_clip")) and self.explicit
        self.item_bias = nn.Embedding(self.n_items, 1)
        nn.init.zeros_(self.item_bias.weight)

        self._register_user_groups(dataset)
        self._register_domain_stats(dataset)
        self.sampling_seed = int(config["seed"])
        generator = torch.Generator().manual_seed(self.sampling_seed)
        # Fixed starting noise per user (and a fixed generator for the reverse steps): a cold
        # user's generated feature does not depend on which batch it is scored in, and
        # checkpoints reproduce evaluations exactly.
        self.register_buffer("sampling_noise", torch.randn(self.n_users, dim, generator=generator))
        self._generated = None
        self._item_features = None
        logger.info(self._settings_line(int(setting(config, "stage1_epochs"))))

    def _settings_line(self, stage1_epochs: int) -> str:
        """What the run really does: the features and user vectors it reads, whether stage 1
        runs (not merely what the settings ask for)."""
        if self.feature_source == "collaborative":
            vectors = "none (learned ID embeddings)"
        else:
            vectors = {
                "reviews": "review vectors",
                "both": "review + history vectors",
                "history": "history vectors (from each user's items)",
            }[self.user_vectors]
        if not self.use_side_users:
            stage1 = "skipped, use_side_users=False"
        elif not self.is_side.any():
            stage1 = "skipped, no side users (use_side_users has no effect)"
        elif not stage1_epochs:
            stage1 = "skipped, stage1_epochs=0"
        else:
            stage1 = f"{stage1_epochs} epochs"
        return (
            f"MuSiC: feature_source={self.feature_source}, user vectors: {vectors}, "
            f"T={self.diffusion.steps}, use_diffusion={self.use_diffusion}, "
            f"direct_transfer={self.direct_transfer}, stage 1 (side users): {stage1}; "
            f"{int(self.is_side.sum())} side users, {int(self.is_train_overlap.sum())} training "
            f"overlap users, {int(self.is_held_out.sum())} held-out (cold-start) users"
        )

    def size_candidates(self) -> list[dict]:
        """The sizes the run also trains and chooses among on validation users (size_search):
        the ``interaction_size_search`` entries (sizes, and the matrix the vectors come from),
        with interaction vectors only -- content vectors come in their encoder's size."""
        if self.feature_source not in INTERACTION_SOURCES:
            return []
        entries = self.interaction_size_search
        refusal = self.features.history_dropout_refusal
        if refusal:  # e.g. a dropout entry on explicit data: the run searches the others
            for entry in (e for e in entries if e[4]):
                logger.info(f"MuSiC size search: candidate {list(entry)} skipped: {refusal}")
            entries = [e for e in entries if not e[4]]
        # where an entry names a history_vector_scale (a history_dropout), every candidate
        # carries one (the run's own where not named): a candidate's settings stay in the config
        # for the next one
        names_scale = any(entry[3] is not None for entry in entries)
        names_dropout = any(entry[4] is not None for entry in entries)
        candidates = []
        for vector_dim, embedding_size, normalization, scale, dropout in entries:
            candidate = {
                "interaction_vector_dim": vector_dim,
                "embedding_size": embedding_size,
                "interaction_vector_normalization": normalization,
            }
            if names_scale:
                candidate["history_vector_scale"] = scale or self.features.history_scale
            if names_dropout:
                candidate["history_dropout"] = (
                    self.features.history_dropout if dropout is None else dropout
                )
            candidates.append(candidate)
        return candidates

    @property
    def unseen_item_scoring(self) -> str | None:
        """What an item unseen in training is scored from (dual cold-start); None = nothing of
        its own (the evaluator's fallback then stands in)."""
        if self.feature_source in CONTENT_SOURCES:
            return "its content vectors through the item MLP (no item bias learnt)"
        if self.features.maps_unseen_items:
            return (
                "its interaction vector mapped from its content vectors (a ridge regression fit "
                "on the items seen in training) through the item MLP (no item bias learnt)"
            )
        return None

    # -- who is who ------------------------------------------------------------------------
    def _register_user_groups(self, dataset):
        role, split = dataset.user_role, dataset.user_split
        self.register_buffer("is_side", role == UserRole.SIDE)
        self.register_buffer("is_overlap", role == UserRole.OVERLAP)
        self.register_buffer("is_train_overlap", self.is_overlap & (split == SplitPart.TRAIN))
        self.register_buffer("is_held_out", self.is_overlap & (split != SplitPart.TRAIN))
        if not self.is_train_overlap.any():
            raise ValueError(
                "MuSiC needs overlapping users whose target interactions are in training, to "
                "learn the transfer; this split has none (lower cold_ratio / valid_ratio)"
            )

    def _register_domain_stats(self, dataset):
        feat = dataset.inter_feat
        is_target = feat[dataset.domain_field] == dataset.target_domain_id
        items = feat[dataset.iid_field]
        self.register_buffer("target_items", torch.unique(items[is_target]))
        self.register_buffer("aux_items", torch.unique(items[~is_target]))
        self._register_domain_mean(dataset)  # [aux, target]
        # rating_clip's bounds: the lowest and highest target rating seen in training; derived
        # from the data and not saved, so checkpoints written before rating_clip still load
        scale = torch.tensor([-torch.inf, torch.inf])
        if self.explicit:
            ratings = feat[dataset.rating_field][is_target].float()
            scale = torch.stack([ratings.min(), ratings.max()])
        self.register_buffer("target_rating_scale", scale, persistent=False)

    def train(self, mode: bool = True):
        # weights may change: generated features and item features must be recomputed
        self._generated = None
        self._item_features = None
        return super().train(mode)

    # -- features --------------------------------------------------------------------------
    @torch.no_grad()
    def generated_target_features(self) -> torch.Tensor:
        """[n_users, d]: generated target features of the held-out users (zeros elsewhere)."""
        if self._generated is None:
            held = torch.nonzero(self.is_held_out).flatten()
            out = torch.zeros_like(self.sampling_noise)
            if len(held):
                out[held] = self.generate(
                    self.features.users_aux(held),
                    x_T=self.sampling_noise[held],
                    generator=torch.Generator().manual_seed(self.sampling_seed),
                )
            self._generated = out
        return self._generated

    @torch.no_grad()
    def generate(self, cond: torch.Tensor, x_T: torch.Tensor, generator=None) -> torch.Tensor:
        """``u_T`` generated for auxiliary features ``cond`` [n, d] from starting noise ``x_T``
        by the full reverse process, back at the features' scale (held-out and new users)."""
        return self.feature_scale * self.diffusion.sample(
            self._denoise,
            cond=cond,
            x_T=x_T,
            generator=generator,
            batch_size=self.sample_batch_size,
        )

    def _all_item_features(self) -> torch.Tensor:
        """[n_items, d]; computed once per evaluation (the item MLP over every item is the cost
        of full ranking), every time while training."""
        if self.training:
            return self.features.items(
                torch.arange(self.n_items, device=self.item_bias.weight.device)
            )
        if self._item_features is None:
            with torch.no_grad():
                all_items = torch.arange(self.n_items, device=self.item_bias.weight.device)
                self._item_features = self.features.items(all_items)
        return self._item_features

    def user_target_features(self, users: torch.Tensor) -> torch.Tensor:
        """``u_T`` as used for scoring: own feature when known, else generated (or ``u_A``)."""
        out = self.features.users_target(users)
        if not self.use_diffusion:
            # w/o diffusion: held-out users are represented by their auxiliary feature (with
            # direct_transfer, every overlapping user: that is what their ratings trained).
            stand_in = self.is_overlap if self.direct_transfer else self.is_held_out
            return torch.where(stand_in[users, None], self.features.users_aux(users), out)
        held = self.is_held_out[users]
        if held.any():
            out = torch.where(held[:, None], self.generated_target_features()[users], out)
        return out

    # -- scoring ---------------------------------------------------------------------------
    def _score(self, user_feat, items, domain: int):
        """Scores of ``items`` ([B], one per user, or [B, n], n per user) for ``user_feat``
        ([B, d]); the same shape as ``items``."""
        table = cached_rows(self._step_item_table, items)
        if table is None:
            item_feat = self.features.items(items.flatten()).view(*items.shape, -1)
            score = _products(user_feat, item_feat)
            if self.rating_bias:
                score = score + self.item_bias(items).squeeze(-1)
        else:  # the step's table carries the item bias as its last column: one gather for both
            if self.rating_bias:
                user_feat = torch.cat([user_feat, user_feat.new_ones(len(user_feat), 1)], 1)
            score = _products(user_feat, table)
        if self.rating_bias and self.explicit:
            score = score + self.domain_mean[domain]
        return score

    @contextmanager
    def _shared_step(self, items: torch.Tensor, **user_tables: torch.Tensor):
        """A training step's features: the users of ``user_tables`` and ``items`` projected once
        (``features.projected_once``); with ``loss_terms_share: step`` the items' features and
        biases are one table that every loss term of the step gathers from."""
        if not self.shares_step:
            with self.features.projected_once(**user_tables, items=items):
                yield
            return
        with self.features.projected_once(**user_tables):
            unique = torch.unique(items)
            table = self.features.items(unique)
            if self.rating_bias:
                table = torch.cat([table, self.item_bias.weight[unique]], 1)
            self._step_item_table = (rows_of(unique), table)
            try:
                yield
            finally:
                self._step_item_table = None

    @property
    def shares_step(self) -> bool:
        """``loss_terms_share: step``: the loss terms of a step share projections, dropout masks
        and negatives (faster); the feature source holds the setting."""
        return self.features.shares_step

    def _negatives(self, rows: int, pool: torch.Tensor) -> torch.Tensor:
        """[rows, num_negatives] items drawn uniformly from ``pool``."""
        return pool[torch.randint(len(pool), (rows, self.num_negatives), device=pool.device)]

    def _rating_loss(self, user_feat, items, ratings, domain: int, pool, negatives=None):
        """MSE on ratings; on implicit data ``ranking_loss`` of each positive against its own
        ``num_negatives`` items drawn uniformly from ``pool`` (or the given ``negatives``). (One
        draw shared by the whole batch is cheaper but gives the loss 1/batch as many negatives:
        food → kitchen seed 1, validation NDCG@20 ~0.04 against ~0.05.)"""
        if self.explicit:
            return F.mse_loss(self._score(user_feat, items, domain), ratings.float())
        positive = self._score(user_feat, items, domain)
        if negatives is not None or self.negatives_shared_by == 1:
            if negatives is None:
                negatives = self._negatives(len(items), pool)
            negative = self._score(user_feat, negatives, domain)
        else:
            negative = self._shared_negative_scores(user_feat, pool)
        if self.ranking_loss == "softmax":
            logits = torch.cat([positive[:, None], negative], dim=1)
            first = torch.zeros(len(items), dtype=torch.long, device=items.device)
            return F.cross_entropy(logits, first)
        logits = torch.cat([positive, negative.flatten()])
        labels = torch.cat([torch.ones(len(items)), torch.zeros(negative.numel())]).to(logits)
        return F.binary_cross_entropy_with_logits(logits, labels)

    def _shared_negative_scores(self, user_feat, pool):
        """[B, num_negatives] scores of negatives drawn per group of ``negatives_shared_by``
        consecutive rows (a batch is shuffled, so a group is random users): each positive still
        meets ``num_negatives`` uniform draws, but the item features are gathered — and their
        gradient scattered back — once per group instead of once per row, the bulk of a
        training step on a large catalogue."""
        rows, dim, group = len(user_feat), user_feat.shape[1], self.negatives_shared_by
        groups = -(-rows // group)
        shape = (groups, self.num_negatives)
        neg = pool[torch.randint(len(pool), shape, device=user_feat.device)]
        item_feat = self.features.items(neg.flatten()).view(*shape, dim)
        padded = F.pad(user_feat, (0, 0, 0, groups * group - rows)).view(groups, group, dim)
        score = torch.einsum("gkd,gnd->gkn", padded, item_feat)
        if self.rating_bias:
            score = score + self.item_bias(neg).view(groups, 1, -1)  # implicit: no mean
        return score.reshape(groups * group, -1)[:rows]

    def _diffusion_loss(self, users, conditional: bool):
        users = torch.unique(users)
        x0 = self.features.users_target(users)
        if self.detach_diffusion_target:
            x0 = x0.detach()  # the diffusion follows the features; it must not shape them
        cond = self.features.users_aux(users) if conditional else None
        x0 = x0 / self._track_feature_scale(x0)
        return self.diffusion.training_loss(self._denoise, x0, cond=cond)

    def _denoise(self, x_t, t, cond=None):
        """The denoiser as the diffusion calls it. With ``condition_residual`` its x̂_0 is
        ``u_A`` (at the diffusion's scale) plus the U-Net's output: the network learns what the
        target feature adds to the auxiliary one, and a network that has learnt nothing yet
        already generates ``u_A`` — the w/o-diffusion ablation's answer — instead of noise."""
        out = self.denoiser(x_t, t, cond)
        if self.condition_residual and cond is not None:
            # a copy: the running scale is updated in place later in the same training step
            out = out + cond / self.feature_scale.clone()
        return out

    def _track_feature_scale(self, x0: torch.Tensor) -> torch.Tensor:
        """The RMS of the target features (a running average while training): the diffusion
        runs on ``u_T / scale``, so its unit-variance noise meets unit-scale data (as latent
        diffusion scales its latents) rather than drowning features of RMS ~0.1 at the first
        step. 1 (the paper's raw features) when ``diffusion_feature_scaling`` is off."""
        if not self.diffusion_feature_scaling:
            return self.feature_scale
        if self.training:
            rms = x0.detach().pow(2).mean().sqrt().clamp(min=1e-6)
            fresh = self.feature_scale_steps == 0
            self.feature_scale.copy_(rms if fresh else 0.99 * self.feature_scale + 0.01 * rms)
            self.feature_scale_steps += 1
        return self.feature_scale

    def _generated_rating_loss(self, users, items, ratings, negatives=None):
        """The rating loss with ``u_T`` generated from ``u_A`` by the full reverse process, as
        held-out users get it: trains the denoiser (and ``u_A``) for what the ratings need.
        With ``generated_rating_grad_steps`` > 0 the gradient flows through that many last
        reverse steps only (faster; docs/music.md)."""
        unique, inverse = torch.unique(users, return_inverse=True)
        x_T = torch.randn(len(unique), self.sampling_noise.shape[1], device=users.device)
        generated = self.feature_scale * self.diffusion.sample_with_grad(
            self._denoise,
            x_T,
            cond=self.features.users_aux(unique),
            grad_steps=self.generated_rating_grad_steps,
        )
        return self._rating_loss(
            generated[inverse], items, ratings, 1, self.target_items, negatives
        )

    def _ratings(self, interaction, rows):
        return interaction[self.RATING][rows] if self.explicit else None

    # -- stage 1: side users -----------------------------------------------------------------
    def _step_items(self, items: torch.Tensor, *pools: torch.Tensor) -> torch.Tensor:
        """The items a training step scores: its own, and on implicit data the pools its
        negatives are drawn from (with 64 draws per positive a step touches almost all of them)."""
        return items if self.explicit else torch.cat([items, *pools])

    def side_user_loss(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        if not (self.is_side[users].all() and self.target_rows(interaction).all()):
            raise RuntimeError("stage 1 got interactions that are not side users' target ones")
        with self._shared_step(self._step_items(items, self.target_items), users_target=users):
            return self._side_user_loss(interaction, users, items)

    def _side_user_loss(self, interaction, users, items):
        loss = items.new_zeros((), dtype=torch.float)
        if self.use_diffusion:
            loss = loss + self._diffusion_loss(users, conditional=False)
        if self.stage1_rating_loss:
            user_feat = self.features.users_target(users)
            loss = loss + self._rating_loss(
                user_feat,
                items,
                self._ratings(interaction, slice(None)),
                1,
                self.target_items,
            )
        return loss

    # -- stage 2: overlapping users (joint) ------------------------------------------------
    def joint_loss(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        target = self.target_rows(interaction)
        if not self.is_train_overlap[users[target]].all():
            raise RuntimeError(
                "stage 2 got target interactions of users who are not "
                "training overlap users (held-out or side users)"
            )
        tables = {"users_aux": users}
        if not self.direct_transfer:
            tables["users_target"] = users[target]
        with self._shared_step(
            self._step_items(items, self.target_items, self.aux_items), **tables
        ):
            return self._joint_loss(interaction, users, items, target)

    def _joint_loss(self, interaction, users, items, target):
        loss = items.new_zeros((), dtype=torch.float)
        if target.any():
            t_users, t_items = users[target], items[target]
            user_feat = (
                self.features.users_aux(t_users)
                if self.direct_transfer
                else self.features.users_target(t_users)
            )
            ratings = self._ratings(interaction, target)
            # with loss_terms_share: step, the generated u_T meets the same negatives
            negatives = (
                self._negatives(len(t_items), self.target_items)
                if self.shares_step and not self.explicit and self.negatives_shared_by == 1
                else None
            )
            loss = loss + self._rating_loss(
                user_feat, t_items, ratings, 1, self.target_items, negatives
            )
            if self.use_diffusion:
                loss = loss + self.diffusion_weight * self._diffusion_loss(t_users, True)
                if self.generated_rating_weight > 0:
                    loss = loss + self.generated_rating_weight * self._generated_rating_loss(
                        t_users, t_items, ratings, negatives
                    )
        aux = ~target
        if aux.any() and self.aux_rating_weight > 0:
            a_users, a_items = users[aux], items[aux]
            loss = loss + self.aux_rating_weight * self._rating_loss(
                self.features.users_aux(a_users),
                a_items,
                self._ratings(interaction, aux),
                0,
                self.aux_items,
            )
        return loss

    def calculate_loss(self, interaction):
        return self.joint_loss(interaction)

    # -- prediction ----------------------------------------------------------------------------
    def predict(self, interaction):
        users = interaction[self.USER_ID]
        score = self._score(self.user_target_features(users), interaction[self.ITEM_ID], 1)
        if self.rating_clip:  # a predicted rating beyond the scale is further from any rating
            score = score.clamp(*self.target_rating_scale)
        return score

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID]
        scores = self.user_target_features(users) @ self._all_item_features().T
        if self.rating_bias:
            scores = scores + self.item_bias.weight.view(1, -1)
            if self.explicit:
                scores = scores + self.domain_mean[1]
        return scores.view(-1)
