"""DCLW (Yeh et al. 2022, "Decoupled Contrastive Learning"): DCL with von Mises-Fisher weights.

As DCL, with each positive pair's pull scaled by w = 2 - exp(cos / sigma) / mean(exp(cos / sigma))
over the batch, so the pairs whose views still disagree are pulled harder.
"""

from __future__ import annotations

from torch import nn

from ..data.spec import DataSpec
from ..objectives import DCLW as DCLWLoss
from .dcl import DCL
from .registry import register


@register("dclw", family="contrastive", paper="Yeh et al. 2022, Decoupled Contrastive Learning")
class DCLW(DCL):
    # Paper: sigma 0.5. Recipe, projector and views are DCL's (and so SimCLR's).

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 temperature: float = 0.1,
                 sigma: float = 0.5, proj_hidden_dim: int = 512, proj_dim: int = 128):
        super().__init__(backbone, views, data, temperature, proj_hidden_dim, proj_dim)
        self.objective = DCLWLoss(temperature=temperature, sigma=sigma)
