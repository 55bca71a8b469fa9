"""Redundancy-reduction objectives: decorrelate the features of two views' projections."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .. import distributed
from ._inputs import check_two_views, loss_precision


class BarlowTwins(nn.Module):
    """The Barlow Twins loss: push the two views' cross-correlation matrix to the identity.

    Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction",
    eq. (1) and (2). Each projection is standardized over the batch of B samples (mean 0, biased
    variance, as the official code's ``BatchNorm1d(affine=False)``)::

        zn = (z - mean_b z) / sqrt(var_b z + eps)
        C_ij = sum_b zn1_bi * zn2_bj / B
        L = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2

    Under ``torch.distributed`` B is the global batch: the means, variances and C are sums over
    all ranks, so every rank computes the same loss, equal to the single-process loss on the
    concatenated batch. Ranks may hold different numbers of samples.
    """

    # Every rank computes the full-batch loss from all-reduced statistics.
    distributed_loss: ClassVar[str] = "global"

    def __init__(self, lambda_: float = 0.0051, eps: float = 1e-5) -> None:
        super().__init__()
        if lambda_ < 0:
            raise ValueError(f"lambda_ must be non-negative, got {lambda_}")
        if eps < 0:
            raise ValueError(f"eps must be non-negative, got {eps}")
        self.lambda_ = lambda_
        self.eps = eps

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """z1, z2: (b, D) projections of the two views on this rank; returns a scalar loss."""
        check_two_views(z1, z2)
        z1, z2 = loss_precision(z1), loss_precision(z2)
        with torch.autocast(device_type=z1.device.type, enabled=False):
            c = cross_correlation(z1, z2, self.eps)  # (D, D)
            on_diag = (1 - c.diagonal()).pow(2).sum()
            # Masking, not sum(C^2) - sum(diag^2): near convergence the diagonal is ~D and the
            # subtraction would drown the off-diagonal terms in float32 rounding.
            eye = torch.eye(c.shape[0], dtype=torch.bool, device=c.device)  # (D, D)
            off_diag = c.masked_fill(eye, 0).pow(2).sum()
            return on_diag + self.lambda_ * off_diag


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """C of Barlow Twins eq. (2) over the global batch: (b, D), (b, D) -> (D, D).

    Every rank computes the same C from summed statistics. The sums go through
    ``all_reduce_sum_with_grad``, whose backward sums the ranks' gradients; as each rank's loss
    is the same full-batch loss L, rank r's projections receive world_size * dL/dz_r, and DDP's
    average over ranks of the parameter gradients divides that factor away, leaving exactly the
    full-batch gradient dL/dtheta.
    """
    z = torch.stack((z1, z2))  # (2, b, D)
    # The count rides with the first sum so that uneven per-rank batches still standardize right.
    count = z.new_full((2, 1), z.shape[1])  # (2, 1)
    totals = distributed.all_reduce_sum_with_grad(torch.cat((z.sum(1), count), dim=1))
    n = totals[0, -1]  # global batch size B
    mean = (totals[:, :-1] / n).unsqueeze(1)  # (2, 1, D)
    # Two passes (sum of squared deviations from the global mean) rather than E[z^2] - E[z]^2,
    # which cancels catastrophically in float32 when a feature's mean dwarfs its spread.
    var = distributed.all_reduce_sum_with_grad((z - mean).pow(2).sum(1)).unsqueeze(1) / n
    zn = (z - mean) / torch.sqrt(var + eps)  # (2, b, D)
    return distributed.all_reduce_sum_with_grad(zn[0].T @ zn[1]) / n  # (D, D)
