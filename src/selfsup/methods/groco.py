"""GroCo (Shvetsova et al. 2023, "Learning by Sorting: Self-supervised Learning with Group
Ordering Constraints").

SimCLR's two views and projection MLP, trained by sorting: for every anchor a differentiable
sorting network orders its positive against its hardest negatives, and the loss asks the
positive to come out on top.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives import GroCo as GroCoLoss
from ..views import ViewConfig
from .base import Method, Recipe
from .heads import projection_mlp
from .registry import register


@register("groco", family="contrastive",
          paper="Shvetsova et al. 2023, Learning by Sorting: Self-supervised Learning with Group "
                "Ordering Constraints")
class GroCo(Method):
    # Official configs: 10 hardest negatives, Cauchy relaxation with steepness 1, stop-gradient
    # on positives and negatives, a 3-layer 2048-d projector, SGD lr 0.75 x B/256 at batch 1024.
    # For the CPU budget: SimCLR's measured recipe and projector (simclr.py), so the methods
    # differ only in the loss.
    recipe = Recipe(optimizer="adamw", lr=2e-3, weight_decay=0.05, warmup_fraction=0.05,
                    views=ViewConfig(crop_scale=(0.5, 1.0), crop_ratio=0.72))

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec, negatives: int = 10,
                 steepness: float = 1.0, proj_hidden_dim: int = 512, proj_dim: int = 128):
        super().__init__(backbone, views, data)
        self.projector = projection_mlp(backbone.dim, proj_hidden_dim, proj_dim)
        self.objective = GroCoLoss(negatives=negatives, steepness=steepness)

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x1, x2 = self.views(batch.inputs)  # (B, C, S, S) each
        z1 = self.projector(self.encode(x1))  # (B, proj_dim)
        z2 = self.projector(self.encode(x2))
        return {"loss": self.objective(z1, z2)}
