"""DCL (Yeh et al. 2022, "Decoupled Contrastive Learning").

SimCLR's architecture (two views, a projection MLP, cosine similarities over the batch) with the
positive pair taken out of the loss's denominator, which removes the negative-positive coupling
that makes NT-Xent need large batches.
"""

from __future__ import annotations

import torch
from torch import nn

from ..objectives import DCL as DCLLoss
from ..views import ViewConfig
from .base import Method, Recipe
from .heads import projection_mlp
from .registry import register


@register("dcl", family="contrastive", paper="Yeh et al. 2022, Decoupled Contrastive Learning")
class DCL(Method):
    # Paper: SimCLR's recipe with DCL swapped in (LARS, temperature 0.1 on ImageNet, 0.07 on
    # CIFAR in its ablation). Here SimCLR's measured CPU recipe (simclr.py), so the two differ
    # only in the loss.
    recipe = Recipe(optimizer="adamw", lr=2e-3, weight_decay=0.05, warmup_fraction=0.05,
                    views=ViewConfig(crop_scale=(0.5, 1.0), crop_ratio=0.72))

    def __init__(self, backbone: nn.Module, views: nn.Module, temperature: float = 0.1,
                 proj_hidden_dim: int = 512, proj_dim: int = 128):
        super().__init__(backbone, views)
        self.projector = projection_mlp(backbone.dim, proj_hidden_dim, proj_dim)
        self.objective = DCLLoss(temperature=temperature)

    def training_loss(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x1, x2 = self.views(images)  # (B, C, S, S) each
        z1 = self.projector(self.encode(x1))  # (B, proj_dim)
        z2 = self.projector(self.encode(x2))
        return {"loss": self.objective(z1, z2)}
