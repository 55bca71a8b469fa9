"""Contrastive objectives: pull two views of a sample together, push other samples away."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ._inputs import check_two_views, loss_precision


class NTXent(nn.Module):
    """NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR.

    Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations",
    eq. (1). For a batch of N samples seen through two views, 2N projections z_1..z_2N, and a
    positive pair (i, j) of the same sample::

        l(i, j) = -log( exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau) )
        sim(u, v) = u.v / (|u| |v|)
        L = (1 / 2N) * sum over all 2N anchors i of l(i, j(i))

    Under ``torch.distributed`` the N samples are the global batch: every rank's projections are
    gathered as candidates, this rank's rows are its anchors, and the loss is the mean over them.
    DDP's averaging of gradients over ranks then yields the gradient of the full-batch loss.
    Every rank must hold the same number of samples.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """z1, z2: (b, D) projections of the two views on this rank; returns a scalar loss."""
        check_two_views(z1, z2)
        b = z1.shape[0]
        z1, z2 = loss_precision(z1), loss_precision(z2)
        with torch.autocast(device_type=z1.device.type, enabled=False):
            # Normalize before the gather: each rank normalizes only its own rows once.
            z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)  # (b, D)
            n = b * distributed.world_size()
            candidates = torch.cat(
                (distributed.gather_with_grad(z1), distributed.gather_with_grad(z2))
            )  # (2n, D): all first views in rank order, then all second views
            anchors = torch.cat((z1, z2))  # (2b, D)
            logits = anchors @ candidates.T / self.temperature  # (2b, 2n)

            local = torch.arange(b, device=z1.device) + distributed.rank() * b  # (b,)
            self_index = torch.cat((local, local + n))  # (2b,) each anchor's own column
            positive_index = torch.cat((local + n, local))  # (2b,) its other view
            # k != i in the denominator: an anchor is never its own negative.
            logits = logits.scatter(1, self_index[:, None], float("-inf"))
            return F.cross_entropy(logits, positive_index)
