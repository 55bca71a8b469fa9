"""MoCHi (Kalantidis et al. 2020, "Hard Negative Mixing for Contrastive Learning").

MoCo v2 whose queries also meet synthetic hard negatives: mixtures of their hardest queue keys
(s of them) and of themselves with those keys (s' of them), made fresh at every step.
"""

from __future__ import annotations

from torch import nn

from ..data.spec import DataSpec
from ..objectives import MoCHi as MoCHiLoss
from .moco import MoCo
from .registry import register


@register("mochi", family="contrastive",
          paper="Kalantidis et al. 2020, Hard Negative Mixing for Contrastive Learning")
class MoCHi(MoCo):
    # Paper (ImageNet-100, K = 16384): N = 1024 hardest, s = 1024, s' = 256, otherwise MoCo v2.
    # The same proportions for our K = 4096 queue: N = 256, s = 256, s' = 64 (N is capped at the
    # queue size when the data makes the queue smaller). Recipe and momentum as `moco`.

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 temperature: float = 0.2, queue_size: int | None = None,
                 momentum: float = 0.99, proj_hidden_dim: int = 512, proj_dim: int = 128,
                 n_hard: int = 256, n_mixed: int = 256, n_query_mixed: int = 64):
        self.mixing = (n_hard, n_mixed, n_query_mixed)
        super().__init__(backbone, views, data, temperature, queue_size, momentum,
                         proj_hidden_dim, proj_dim)

    def build_objective(self, temperature: float) -> nn.Module:
        n_hard, n_mixed, n_query_mixed = self.mixing
        return MoCHiLoss(temperature, min(n_hard, self.queue.size), n_mixed, n_query_mixed)
