"""Barlow Twins (Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction").

The cross-correlation of the two views' projections is pushed towards the identity: invariance
on the diagonal, redundancy reduction off it.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives import BarlowTwins as BarlowTwinsLoss
from ..views import ViewConfig
from .base import Recipe
from .heads import projection_mlp
from .registry import register
from .two_view import TwoViewMethod


@register("barlow_twins", family="redundancy reduction",
          paper="Zbontar et al. 2021, Barlow Twins: Self-Supervised Learning via Redundancy "
                "Reduction")
class BarlowTwins(TwoViewMethod):
    # Paper: 3-layer 8192-d projector, lambda 0.0051, LARS lr 0.2 (weights) with wd 1.5e-6.
    # For a 10-minute CPU budget the sweep in benchmarks/RESULTS.md chose AdamW, the milder
    # crops and 0.72-side training crops SimCLR uses here, and a 512-d projector: wider ones
    # (1024, 2048) learned less in the budget, and lambda 0.02 or 0.002 did worse than 0.0051.
    # Solarization on each view with p = 0.2 (BYOL's, which the paper's views follow with p = 0
    # and 0.2 on its two views): issue 18, at 10 minutes, seed 0, +0.81 kNN on Fashion-MNIST
    # and +3.88 on CIFAR-10 as a folder. Mixed Barlow Twins shares this recipe.
    recipe = Recipe(optimizer="adamw", lr=2e-3, weight_decay=0.05, warmup_fraction=0.05,
                    views=ViewConfig(crop_scale=(0.5, 1.0), crop_ratio=0.72, solarize_p=0.2))

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 lambda_: float = 0.0051,
                 proj_hidden_dim: int = 512, proj_dim: int = 512, proj_layers: int = 3,
                 loss_scale: float = 0.1, teacher_momentum: float | None = None):
        super().__init__(backbone, views, data,
                         projection_mlp(backbone.dim, proj_hidden_dim, proj_dim, proj_layers),
                         BarlowTwinsLoss(lambda_=lambda_), proj_dim, proj_hidden_dim,
                         teacher_momentum)
        # The loss sums D diagonal terms; scaling it keeps LARS's step sizes in range (as the
        # solo-learn CIFAR recipe does).
        self.loss_scale = loss_scale

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": self.loss_scale * self.two_view_loss(batch)}
