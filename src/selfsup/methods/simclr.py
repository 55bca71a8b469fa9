"""SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations").

Two augmented views of each image, a projection MLP g, and the NT-Xent loss on g(f(x)); the
representation used downstream is f(x), before the projector.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives import NTXent
from ..views import ViewConfig
from .base import Recipe
from .heads import projection_mlp
from .registry import register
from .two_view import TwoViewMethod


@register("simclr", family="contrastive",
          paper="Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual "
                "Representations")
class SimCLR(TwoViewMethod):
    # Paper: LARS, lr 0.3 x B/256, wd 1e-6, temperature 0.5 (0.1 at batch 256 in its
    # ablation), 2-layer projector to 128-d. For a 10-minute CPU budget the sweep in
    # benchmarks/RESULTS.md chose AdamW (+2-3 kNN points over LARS), milder crops (scale >= 0.5:
    # small grayscale images lose their shape below it) and training crops at 0.72 of the
    # input side (20 px for 28 px: 1.7x the images/s, evaluated at full size). Solarization
    # (BYOL's, Grill et al. 2020) on each view with p = 0.2 was issue 18's first lever to gain
    # on Fashion-MNIST (+1.6 kNN at 10 minutes) without losing on CIFAR-10 as a folder.
    recipe = Recipe(optimizer="adamw", lr=2e-3, weight_decay=0.05, warmup_fraction=0.05,
                    views=ViewConfig(crop_scale=(0.5, 1.0), crop_ratio=0.72, solarize_p=0.2))

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 temperature: float = 0.1,
                 proj_hidden_dim: int = 512, proj_dim: int = 128,
                 teacher_momentum: float | None = None):
        super().__init__(backbone, views, data,
                         projection_mlp(backbone.dim, proj_hidden_dim, proj_dim),
                         NTXent(temperature=temperature), proj_dim, proj_hidden_dim,
                         teacher_momentum)

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": self.two_view_loss(batch)}
