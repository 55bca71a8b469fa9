"""T-JEPA (Thimonier et al. 2024, "T-JEPA: Augmentation-Free Self-Supervised Learning for Tabular
Data"), I-JEPA's recipe (Assran et al. 2023) on the features of a table row.

Per batch, a context subset and M disjoint target subsets of the features
(`views.feature_masking`). The context encoder (the backbone) sees only the context tokens; the
target encoder, an EMA of it, sees every token; a predictor reads the context encoder's output
with one mask token per target feature (plus that feature's position embedding) and regresses
the target encoder's output tokens of those features, with an MSE in representation space
(`objectives.predictive.LatentPredictionMSE`).

Regularization tokens, here: R learned vectors that depend on no input, prepended to the
sequence of both encoders (`backbones.ft_transformer`) and so always part of the context and of
the target encoder's input, never a prediction target; the predictor reads their context outputs
at positions 0..R-1 and feature f sits at position R + f. The authors' code prepends them too
(as ``n_cls_tokens``, default 1) but gathers its masks with unshifted feature ids, so there the
context encoder sees a regularization token only when feature 0 is drawn, a drawn feature f
selects the token of feature f - R, and the last R features are never targets; we shift the ids.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..backbones.vit import sincos_pos_embed_1d
from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives.predictive import LatentPredictionMSE
from ..views import ViewConfig
from ..views.feature_masking import (
    feature_mask_ranges,
    sample_feature_masks,
    targets_that_fit,
)
from .base import Method, Recipe
from .momentum import MomentumTeacher
from .registry import register

log = logging.getLogger("selfsup")
DEFAULT_TARGETS = 4  # the authors' launch scripts


def linear_momentum(progress: float, base: float) -> float:
    """The authors' EMA schedule: linear from ``base`` at the start to 1 at the end."""
    return base + (1.0 - base) * min(max(progress, 0.0), 1.0)


def gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """tokens (B, N, d), ids (M, B, n) -> (M, B, n, d): each target's tokens."""
    m = ids.shape[0]
    expanded = tokens[None].expand(m, -1, -1, -1)  # (M, B, N, d)
    return torch.gather(expanded, 2, ids[..., None].expand(-1, -1, -1, tokens.shape[-1]))


class FeaturePredictor(nn.Module):
    """I-JEPA's narrow transformer predictor: context tokens mapped to ``dim`` plus their
    position embeddings, then one mask token plus position embedding per target feature, timm
    blocks, a LayerNorm and a map back to the encoder's width. Fixed 1-D sin-cos positions over
    the R regularization tokens and T features, as the authors' predictor."""

    def __init__(self, num_positions: int, embed_dim: int, dim: int, depth: int, heads: int):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.embed = nn.Linear(embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.register_buffer("pos_embed", sincos_pos_embed_1d(
            dim, torch.arange(num_positions)).float(), persistent=False)  # (R + T, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, 2.0, qkv_bias=True) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, embed_dim)

    def forward(self, context: torch.Tensor, context_pos: torch.Tensor,
                target_pos: torch.Tensor) -> torch.Tensor:
        """context (B, Nc, E) at positions (B, Nc); target positions (M, B, n) ->
        predictions (M, B, n, E)."""
        m, b, n = target_pos.shape
        z = self.embed(context) + self.pos_embed[context_pos]  # (B, Nc, D)
        z = z.repeat(m, 1, 1)  # (M*B, Nc, D), target-major like target_pos.flatten(0, 1)
        queries = self.mask_token + self.pos_embed[target_pos.flatten(0, 1)]  # (M*B, n, D)
        x = torch.cat([z, queries.to(z.dtype)], dim=1)
        for block in self.blocks:
            x = block(x)
        out = self.proj(self.norm(x[:, -n:]))  # (M*B, n, E)
        return out.view(m, b, n, -1)


@register("tjepa", family="joint-embedding predictive",
          paper="Thimonier et al. 2024, T-JEPA: Augmentation-Free Self-Supervised Learning for "
                "Tabular Data",
          status="experimental")  # the learning guard (selfsup/guard.py) measures the status
class TJEPA(Method):
    # The authors' launch script (jannis): AdamW, lr 3.7e-4 at batch 512, no weight decay, 10 of
    # 300 epochs warmup, EMA 0.996 -> 1, 4 targets, context share 0.136-0.368, target share
    # 0.156-0.622, 64-wide encoder and 16-wide predictor. Here: 1e-3 per 256 for a run of
    # minutes instead of 300 epochs on a GPU (to be measured), 5% warmup.
    recipe = Recipe(optimizer="adamw", lr=1e-3, weight_decay=0.0, warmup_fraction=0.05,
                    backbone="ft_transformer", views=ViewConfig(kind="identity"))
    modalities = ("table",)

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 num_targets: int | None = None, min_context: float = 0.136,
                 max_context: float = 0.368,
                 min_target: float = 0.156, max_target: float = 0.622, momentum: float = 0.996,
                 predictor_dim: int = 32, predictor_depth: int = 2, predictor_heads: int = 4):
        super().__init__(backbone, views, data)
        if not callable(getattr(backbone, "tokens", None)) or not hasattr(backbone,
                                                                          "num_prefix_tokens"):
            raise ValueError("tjepa needs a table token backbone (ft_transformer), got "
                             f"{type(backbone).__name__}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.num_features = backbone.num_features
        if num_targets is None:  # the paper's 4, or as many as a narrow table holds
            num_targets = targets_that_fit(self.num_features, (min_context, max_context),
                                           (min_target, max_target), DEFAULT_TARGETS)
            if num_targets < DEFAULT_TARGETS:
                log.info("selfsup: tjepa: %d features hold %d disjoint targets beside the "
                         "context, not %d", self.num_features, num_targets, DEFAULT_TARGETS)
        self.num_targets = num_targets
        self.context_range, self.target_range = feature_mask_ranges(
            self.num_features, (min_context, max_context), (min_target, max_target),
            num_targets)
        self.base_momentum = momentum
        reg = backbone.num_prefix_tokens
        self.predictor = FeaturePredictor(reg + self.num_features, backbone.embed_dim,
                                          predictor_dim, predictor_depth, predictor_heads)
        self.teacher = MomentumTeacher(backbone)
        self.objective = LatentPredictionMSE()

    def predict(self, x: torch.Tensor, context: torch.Tensor, targets: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessed rows (B, T), context ids (B, n_ctx), target ids (M, B, n_tgt) ->
        predicted and target representations, both (M, B, n_tgt, E)."""
        reg = self.backbone.num_prefix_tokens
        with torch.no_grad():
            h = self.teacher.module.tokens(x)[:, reg:]  # (B, T, E): every feature
            h = gather_tokens(h, targets)
        z = self.backbone.tokens(x, keep=context)  # (B, R + n_ctx, E)
        prefix = torch.arange(reg, device=x.device).expand(x.shape[0], -1)  # (B, R)
        context_pos = torch.cat([prefix, reg + context], dim=1)
        return self.predictor(z, context_pos, reg + targets), h

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(batch.inputs)  # (B, T), preprocessed
        context, targets = sample_feature_masks(x.shape[0], self.num_features,
                                                self.context_range, self.target_range,
                                                self.num_targets, x.device)
        predicted, h = self.predict(x, context, targets)
        return {"loss": self.objective(predicted, h)}

    def after_optimizer_step(self, progress: float) -> None:
        self.teacher.update(self.backbone, linear_momentum(progress, self.base_momentum))

    def export(self) -> nn.Module:
        """The target (EMA) encoder, which the authors probe, as I-JEPA evaluates its own."""
        return self.teacher.module
