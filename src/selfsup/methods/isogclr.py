"""iSogCLR (Qiu et al. 2023, "Not All Semantics are Created Equal: Contrastive Self-supervised
Learning with Automatic Temperature Individualization").

SimCLR's two views and projector, trained on the robust contrastive loss with one learned
temperature per training sample and a moving-average estimate of each sample's partition
function, so small batches suffice.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives import ISogCLR as ISogCLRLoss
from ..views import ViewConfig
from .base import Method, Recipe
from .heads import projection_mlp
from .registry import register


@register("isogclr", family="contrastive",
          paper="Qiu et al. 2023, Not All Semantics are Created Equal: Contrastive "
                "Self-supervised Learning with Automatic Temperature Individualization")
class ISogCLR(Method):
    # Paper/official code (CIFAR, unimodal): LARS lr 0.8 at batch 128, rho 0.4, gamma 0.8,
    # tau from 0.1 in [0.05, 1], eta 0.03, beta 0.5. Here: those loss settings with SimCLR's
    # AdamW recipe and views for 28 px (benchmarks/RESULTS.md). The loss's gradient is about
    # tau times NT-Xent's; AdamW normalizes the step size, so the lr carries over.
    recipe = Recipe(optimizer="adamw", lr=2e-3, weight_decay=0.05, warmup_fraction=0.05,
                    views=ViewConfig(crop_scale=(0.5, 1.0), crop_ratio=0.72))

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 rho: float = 0.4, gamma: float = 0.8, tau_init: float = 0.1,
                 tau_min: float = 0.05, tau_max: float = 1.0, eta: float = 0.03,
                 beta: float = 0.5, proj_hidden_dim: int = 512, proj_dim: int = 128):
        super().__init__(backbone, views, data)
        self.projector = projection_mlp(backbone.dim, proj_hidden_dim, proj_dim)
        self.objective = ISogCLRLoss(data.num_samples, tau_init, tau_min, tau_max, rho, gamma, eta,
                                     beta)

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x1, x2 = self.views(batch.inputs)  # (B, C, S, S) each
        z1 = self.projector(self.encode(x1))  # (B, proj_dim)
        z2 = self.projector(self.encode(x2))
        loss = self.objective(z1, z2, batch.indices)  # per-sample temperatures by dataset index
        return {"loss": loss, "tau_mean": self.objective.tau[batch.indices].mean()}
