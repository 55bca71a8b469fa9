"""DCL (Yeh et al. 2022, "Decoupled Contrastive Learning").

SimCLR's architecture (two views, a projection MLP, cosine similarities over the batch) with the
positive pair taken out of the loss's denominator, which removes the negative-positive coupling
that makes NT-Xent need large batches.
"""

from __future__ import annotations

from torch import nn

from ..data.spec import DataSpec
from ..objectives import DCL as DCLLoss
from .registry import register
from .simclr import SimCLR


@register("dcl", family="contrastive", paper="Yeh et al. 2022, Decoupled Contrastive Learning")
class DCL(SimCLR):
    # Paper: SimCLR's recipe with DCL swapped in (LARS, temperature 0.1 on ImageNet, 0.07 on
    # CIFAR in its ablation). Here SimCLR's measured CPU recipe, views, projector and training
    # step (simclr.py), so the two differ only in the loss.

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 temperature: float = 0.1,
                 proj_hidden_dim: int = 512, proj_dim: int = 128):
        super().__init__(backbone, views, data, temperature, proj_hidden_dim, proj_dim)
        self.objective = DCLLoss(temperature=temperature)
