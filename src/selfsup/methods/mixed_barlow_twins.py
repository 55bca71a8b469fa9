"""Mixed Barlow Twins (Bandara et al. 2023, "Guarding Barlow Twins Against Overfitting with
Mixed Samples").

Barlow Twins plus a regularizer on mixed samples, as the official code (github.com/wgcban/mix-bt,
``main.py``, ``train``): each step draws one alpha ~ Beta(1, 1) and a permutation pi, encodes the
mixed input x_m = alpha x_A + (1 - alpha) x_B[pi] of the two views (their normalized tensors:
normalization is affine, so this is also the mixture of the [0, 1] images, normalized), and asks
the cross-correlations of z_m with each view to be the same mixture of the views' own
cross-correlations (``objectives.redundancy.MixedBarlowTwinsRegularizer``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives.redundancy import MixedBarlowTwinsRegularizer, mix_inputs
from .barlow_twins import BarlowTwins
from .registry import register


@register("mixed_barlow_twins", family="redundancy reduction",
          paper="Bandara et al. 2023, Guarding Barlow Twins Against Overfitting with Mixed "
                "Samples")
class MixedBarlowTwins(BarlowTwins):
    # Barlow Twins' recipe, projector and loss (methods/barlow_twins.py). The regularizer weight
    # is mix_scale * lambda_ with the official scale s = 4 (scripts-pretrain-*/cifar10.sh) and
    # lambda_ the Barlow Twins off-diagonal weight, as in the official code, where one --lmbda
    # serves both terms. The official 0.0078125 (= 1/128) goes with its 1024-d projector; ours is
    # 512-d, where the sweep behind Barlow Twins' recipe found 0.0051 best, so the regularizer
    # follows that lambda (weight 4 x 0.0051 = 0.0204): both terms sum squared correlation errors
    # over D x D entries, so their ratio s is what carries over between widths. The regularizer is
    # multiplied by Barlow Twins' loss_scale with the rest of the loss, keeping that ratio.
    recipe = BarlowTwins.recipe

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 lambda_: float = 0.0051, mix_scale: float = 4.0,
                 proj_hidden_dim: int = 512, proj_dim: int = 512, proj_layers: int = 3,
                 loss_scale: float = 0.1):
        super().__init__(backbone, views, data, lambda_=lambda_, proj_hidden_dim=proj_hidden_dim,
                         proj_dim=proj_dim, proj_layers=proj_layers, loss_scale=loss_scale)
        self.regularizer = MixedBarlowTwinsRegularizer(lambda_=lambda_, scale=mix_scale)

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x_a, x_b = self.views(batch.inputs)  # (B, C, S, S) each, normalized
        x_m, alpha, perm = mix_inputs(x_a, x_b)
        # three passes, as the official code and Barlow Twins here: batch norm sees each batch
        # on its own
        z_a = self.projector(self.encode(x_a))  # (B, proj_dim)
        z_b = self.projector(self.encode(x_b))
        z_m = self.projector(self.encode(x_m))
        bt = self.loss_scale * self.objective(z_a, z_b)
        mix = self.loss_scale * self.regularizer(z_a, z_b, z_m, perm, alpha)
        return {"loss": bt + mix, "loss_bt": bt.detach(), "loss_mix": mix.detach()}
