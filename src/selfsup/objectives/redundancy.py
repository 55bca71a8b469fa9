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


def batch_standardize(z: torch.Tensor, eps: float = 1e-5, unbiased: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardize each of k stacked projections over the global batch: (k, b, D) -> (k, b, D).

    zn = (z - mean) / sqrt(var + eps), per feature, with the mean and variance over all ranks'
    samples; ``unbiased`` divides the squared deviations by B - 1 (``Tensor.std``'s default)
    instead of B (``BatchNorm1d``). Also returns the global batch size B as a 0-d tensor.
    """
    # The count rides with the first sum so that uneven per-rank batches still standardize right.
    count = z.new_full((z.shape[0], 1), z.shape[1])  # (k, 1)
    totals = distributed.all_reduce_sum_with_grad(torch.cat((z.sum(1), count), dim=1))
    n = totals[0, -1]  # global batch size B
    mean = (totals[:, :-1] / n).unsqueeze(1)  # (k, 1, D)
    # Two passes (sum of squared deviations from the global mean) rather than E[z^2] - E[z]^2,
    # which cancels catastrophically in float32 when a feature's mean dwarfs its spread.
    squares = distributed.all_reduce_sum_with_grad((z - mean).pow(2).sum(1)).unsqueeze(1)
    var = squares / (n - 1 if unbiased else n)  # (k, 1, D)
    return (z - mean) / torch.sqrt(var + eps), n


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """C of Barlow Twins eq. (2) over the global batch: (b, D), (b, D) -> (D, D).

    Every rank computes the same C from summed statistics. The sums go through
    ``all_reduce_sum_with_grad``, whose backward sums the ranks' gradients; as each rank's loss
    is the same full-batch loss L, rank r's projections receive world_size * dL/dz_r, and DDP's
    average over ranks of the parameter gradients divides that factor away, leaving exactly the
    full-batch gradient dL/dtheta.
    """
    zn, n = batch_standardize(torch.stack((z1, z2)), eps)  # (2, b, D)
    return distributed.all_reduce_sum_with_grad(zn[0].T @ zn[1]) / n  # (D, D)


class MixedBarlowTwinsRegularizer(nn.Module):
    """The Mixed Barlow Twins regularizer: a mixed input's projection should correlate with each
    view as the same mixture of the views' projections does.

    Bandara et al. 2023, "Guarding Barlow Twins Against Overfitting with Mixed Samples", the
    regularization term added to the Barlow Twins loss, as written in the official code
    (github.com/wgcban/mix-bt, ``main.py``, ``train``, the "MixUp (Our Contribution)" block).
    The input is mixed as x_m = alpha * x_a + (1 - alpha) * x_b[perm] (``mix_inputs``) and z_m is
    the projection of x_m. With each projection standardized over the batch by the official
    ``(z - z.mean(0)) / z.std(0)`` -- the *unbiased* std (divisor B - 1), no epsilon, unlike the
    biased ``BatchNorm1d`` of ``BarlowTwins`` -- and products divided by B::

        C_ma = zn_m^T zn_a / B                 C_mb = zn_m^T zn_b / B
        G_ma = alpha zn_a^T zn_a / B + (1 - alpha) zn_b[perm]^T zn_a / B
        G_mb = alpha zn_a^T zn_b / B + (1 - alpha) zn_b[perm]^T zn_b / B
        R = s * lambda * (sum_ij (C_ma - G_ma)_ij^2 + sum_ij (C_mb - G_mb)_ij^2)

    As in the official code the reduction is a sum over all D x D entries and the targets G are
    *not* detached: gradients flow into z_a and z_b through both sides. By linearity
    C_ma - G_ma = (zn_m - w)^T zn_a / B with w = alpha zn_a + (1 - alpha) zn_b[perm], which is
    how it is computed here (two products instead of six, and no cancellation of two ~1 terms).

    R is zero exactly when the residual zn_m - w is uncorrelated with every feature of both
    views. z_m = w itself is *not* such a case in general: w's features have std
    sqrt(alpha^2 + (1 - alpha)^2 + 2 alpha (1 - alpha) rho) <= 1 (rho the correlation of a
    feature with its permuted partner), so re-standardizing z_m rescales it and R is generally
    > 0 unless alpha is 0 or 1 or rho = 1. z_m = w + r, with r uncorrelated with both views
    and with w and carrying exactly the variance the mixing lost, is already standardized and
    gives R = 0 (tests/objectives/test_redundancy.py builds one).

    Defaults are the official CIFAR-10 recipe (``scripts-pretrain-resnet18/cifar10.sh`` and
    ``scripts-pretrain-resnet50/cifar10.sh``, 1024-d projector): ``lambda_ = 0.0078125``
    (``--lmbda``, also the Barlow Twins off-diagonal weight there, 1/D) and ``scale = 4.0``
    (``--mixup_loss_scale``; the argparse default is 5.0). The official ImageNet script
    (``main_imagenet.py``) differs: 0.5 * lambda with a scale warmed up over 10 epochs, per-rank
    standardization, and its G_mb uses zn_b^T zn_b where ``main.py`` has zn_a^T zn_b; we follow
    ``main.py``. ``eps`` (default 0, the official value) is added to the variance for features
    that are constant over the batch, which would otherwise divide by zero.

    Under ``torch.distributed`` B is the global batch, as in ``BarlowTwins``: statistics and
    correlations are summed over ranks, so with ``perm`` permuting each rank's own samples the
    loss equals the single-process loss on the concatenated batch with the block permutation.
    """

    distributed_loss: ClassVar[str] = "global"

    def __init__(self, lambda_: float = 0.0078125, scale: float = 4.0, eps: float = 0.0) -> None:
        super().__init__()
        for name, value in (("lambda_", lambda_), ("scale", scale), ("eps", eps)):
            if value < 0:
                raise ValueError(f"{name} must be non-negative, got {value}")
        self.lambda_ = lambda_
        self.scale = scale
        self.eps = eps

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor, z_m: torch.Tensor,
                perm: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
        """z_a, z_b: (b, D) projections of the two views; z_m: (b, D) projection of
        alpha * x_a + (1 - alpha) * x_b[perm]; perm: (b,) indices; returns a scalar."""
        check_two_views(z_a, z_b)
        check_two_views(z_a, z_m)
        if perm.shape != z_a.shape[:1]:
            raise ValueError(
                f"perm must index the {z_a.shape[0]} samples, got shape {tuple(perm.shape)}"
            )
        z = loss_precision(torch.stack((z_a, z_b, z_m)))  # (3, b, D)
        with torch.autocast(device_type=z.device.type, enabled=False):
            zn, n = batch_standardize(z, self.eps, unbiased=True)
            zn_a, zn_b, zn_m = zn.unbind(0)  # (b, D) each
            residual = zn_m - (alpha * zn_a + (1 - alpha) * zn_b[perm])  # (b, D)
            # rows: features of z_m; columns: features of view a (0) or view b (1)
            gaps = torch.stack((residual.T @ zn_a, residual.T @ zn_b))  # (2, D, D)
            gaps = distributed.all_reduce_sum_with_grad(gaps) / n
            return self.scale * self.lambda_ * gaps.pow(2).sum()


def mix_inputs(x_a: torch.Tensor, x_b: torch.Tensor, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, float, torch.Tensor]:
    """Mixed Barlow Twins' input mixing: x_m = alpha * x_a + (1 - alpha) * x_b[perm].

    Bandara et al. 2023; as the official ``main.py``, one alpha ~ Beta(1, 1) (= U(0, 1)) for the
    whole batch and perm a uniform random permutation of it. (B, ...) inputs -> (x_m, alpha, perm)
    with x_m like x_a, alpha a Python float and perm (B,) int64 on x_a's device.
    """
    if x_a.shape != x_b.shape:
        raise ValueError(
            f"the two views must have the same shape, got {tuple(x_a.shape)} and "
            f"{tuple(x_b.shape)}"
        )
    device = generator.device if generator is not None else x_a.device
    # Beta(1, 1) is the uniform distribution, which torch can draw from a generator.
    alpha = float(torch.rand((), generator=generator, device=device))
    perm = torch.randperm(x_a.shape[0], generator=generator, device=device).to(x_a.device)
    return alpha * x_a + (1 - alpha) * x_b[perm], alpha, perm
