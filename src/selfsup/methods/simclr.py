"""SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations").

Two augmented views of each image, a projection MLP g, and the NT-Xent loss on g(f(x)); the
representation used downstream is f(x), before the projector.
"""

from __future__ import annotations

import torch
from torch import nn

from ..objectives import NTXent
from ..views import ViewConfig
from .base import Method, Recipe
from .heads import projection_mlp
from .registry import register


@register("simclr", family="contrastive",
          paper="Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual "
                "Representations")
class SimCLR(Method):
    # Paper: LARS, lr 0.3 x B/256, wd 1e-6, 2-layer projector to 128-d. Small-image values
    # chosen by the sweep in benchmarks/RESULTS.md.
    recipe = Recipe(optimizer="lars", lr=0.3, weight_decay=1e-6, warmup_fraction=0.05,
                    views=ViewConfig())

    def __init__(self, backbone: nn.Module, views: nn.Module, temperature: float = 0.2,
                 proj_hidden_dim: int = 512, proj_dim: int = 128):
        super().__init__(backbone, views)
        self.projector = projection_mlp(backbone.dim, proj_hidden_dim, proj_dim)
        self.objective = NTXent(temperature=temperature)

    def training_loss(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x1, x2 = self.views(images)  # (B, C, S, S) each
        z1 = self.projector(self.encode(x1))  # (B, proj_dim)
        z2 = self.projector(self.encode(x2))
        return {"loss": self.objective(z1, z2)}
