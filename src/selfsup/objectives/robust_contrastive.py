"""The robust contrastive loss with individualized temperatures, optimized by iSogCLR.

Qiu et al. 2023, "Not All Semantics are Created Equal: Contrastive Self-supervised Learning with
Automatic Temperature Individualization".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ._inputs import check_two_views, loss_precision


class ISogCLR(nn.Module):
    """iSogCLR: the DRO-based robust contrastive loss with one learned temperature per sample.

    For anchor x_i with negatives S_i^- (the 2n - 2 views of the other samples of the global
    batch) and h_i(z) = s(x_i, z) - s(x_i, x_i^+) with cosine similarity s, the robust loss is
    (paper eq. 6, a KL-constrained DRO over the negatives, written in its dual form)::

        F(w, tau) = (1/n) sum_i [ tau_i log E_{z in S_i^-} exp(h_i(z) / tau_i) + tau_i rho ]

    Small batches see only a few negatives, so iSogCLR tracks the inner expectation per sample
    with a moving average (Alg. 1), u_i <- (1 - gamma) u_i + gamma g_i with the batch estimate
    g_i = mean_z exp(s(x_i, z) / tau_i) (the positive factor cancels below), and descends the
    surrogate whose gradient in w is the gradient of F::

        l_i = mean_z [ exp(s(x_i, z) / tau_i) / u_i ] s(x_i, z) - s(x_i, x_i^+)   (weights fixed)

    The temperatures take their own projected momentum step, with eta, beta and the clip
    +-3 of the official code::

        dF/dtau_i = log u_i + rho - mean_z [ exp(s / tau_i) / u_i ] s / tau_i
        m_i <- (1 - beta) m_i + beta clip(dF/dtau_i)
        tau_i <- clamp(tau_i - eta m_i, tau_min, tau_max)

    dF/dtau_i = rho - KL(p_i || uniform) for the softmax p_i over the negatives, so tau_i
    settles where that KL equals rho: an anchor with many near-duplicates (frequent semantics)
    spreads p_i over them and keeps a large tau, a rare one gets a small tau (paper, Sec. 4).

    Each view of a sample is an anchor with the sample's temperature; u and the tau step are
    averaged over its two views, as in the official code. The returned value is the batch's
    robust loss (1/2b) sum_a [tau_a log g_a - s(a, a^+)] (without the constant tau rho), carrying
    the surrogate's gradient. Defaults are the official unimodal ones (rho 0.4, gamma 0.8,
    tau in [0.05, 1] from 0.1, eta 0.03, beta 0.5). State (u, m, tau, seen) is kept in buffers of
    length ``num_samples``, indexed by each sample's dataset index, so checkpoints carry it;
    under DDP every rank writes every rank's updates, keeping the buffers identical.
    """

    def __init__(self, num_samples: int, tau_init: float = 0.1, tau_min: float = 0.05,
                 tau_max: float = 1.0, rho: float = 0.4, gamma: float = 0.8, eta: float = 0.03,
                 beta: float = 0.5, grad_clip: float = 3.0) -> None:
        super().__init__()
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2, got {num_samples}")
        if not 0 < tau_min <= tau_init <= tau_max:
            raise ValueError(f"need 0 < tau_min <= tau_init <= tau_max, got {tau_min}, "
                             f"{tau_init}, {tau_max}")
        if not (0 < gamma <= 1 and 0 < beta <= 1):
            raise ValueError(f"gamma and beta must be in (0, 1], got {gamma} and {beta}")
        self.rho, self.gamma, self.eta, self.beta = rho, gamma, eta, beta
        self.tau_min, self.tau_max, self.grad_clip = tau_min, tau_max, grad_clip
        self.register_buffer("tau", torch.full((num_samples,), float(tau_init)))
        self.register_buffer("u", torch.zeros(num_samples))  # moving average of g_i
        self.register_buffer("tau_momentum", torch.zeros(num_samples))  # m_i
        self.register_buffer("seen", torch.zeros(num_samples, dtype=torch.bool))

    @property
    def num_samples(self) -> int:
        return self.tau.shape[0]

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """z1, z2: (b, D) projections of the two views; indices: (b,) dataset indices of the
        samples. Returns a scalar and updates u, m and tau of these samples."""
        check_two_views(z1, z2)
        self._check_indices(indices, z1.shape[0])
        b = z1.shape[0]
        z1, z2 = loss_precision(z1), loss_precision(z2)
        with torch.autocast(device_type=z1.device.type, enabled=False):
            z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)  # (b, D)
            n = b * distributed.world_size()
            candidates = torch.cat((distributed.gather_with_grad(z1),
                                    distributed.gather_with_grad(z2)))  # (2n, D)
            anchors = torch.cat((z1, z2))  # (2b, D)
            sim = anchors @ candidates.T  # (2b, 2n)
            local = torch.arange(b, device=z1.device) + distributed.rank() * b
            own = torch.cat((local, local))  # (2b,) each anchor's sample among the n
            positive = sim.gather(1, torch.cat((local + n, local))[:, None]).squeeze(1)  # (2b,)
            column_sample = torch.arange(2 * n, device=z1.device) % n
            negative = column_sample[None, :] != own[:, None]  # (2b, 2n): the 2n - 2 others

            tau = self.tau[indices].to(sim.dtype).repeat(2)  # (2b,)
            scaled = sim.detach() / tau[:, None]
            e = torch.exp(scaled) * negative  # (2b, 2n)
            g = e.sum(dim=1) / (2 * n - 2)  # (2b,) batch estimate of the inner expectation
            previous = self.u[indices].to(sim.dtype).repeat(2)
            seen = self.seen[indices].repeat(2)
            # a sample's first visit takes the batch estimate: averaging with u = 0 would
            # divide the weights by a tiny number
            u = torch.where(seen, (1 - self.gamma) * previous + self.gamma * g, g)  # (2b,)
            weights = e / u[:, None]  # (2b, 2n), constants for the gradient
            surrogate = (weights * sim).sum(dim=1) / (2 * n - 2) - positive  # (2b,)
            value = tau * torch.log(g) - positive.detach()  # (2b,)
            loss = (surrogate + (value - surrogate).detach()).mean()

            tau_grad = torch.log(u) + self.rho - (weights * scaled).sum(dim=1) / (2 * n - 2)
        self._step(indices, u.view(2, b).mean(0), tau_grad.view(2, b).mean(0))
        return loss

    @torch.no_grad()
    def _step(self, indices: torch.Tensor, u: torch.Tensor, tau_grad: torch.Tensor) -> None:
        """Write this step's u and take the temperature step, for every rank's samples."""
        tau_grad = tau_grad.clamp(-self.grad_clip, self.grad_clip)
        momentum = ((1 - self.beta) * self.tau_momentum[indices].to(tau_grad.dtype)
                    + self.beta * tau_grad)
        tau = (self.tau[indices].to(tau_grad.dtype) - self.eta * momentum).clamp(
            self.tau_min, self.tau_max)
        gather = distributed.gather_with_grad
        indices = gather(indices)
        self.u[indices] = gather(u).to(self.u.dtype)
        self.tau_momentum[indices] = gather(momentum).to(self.tau_momentum.dtype)
        self.tau[indices] = gather(tau).to(self.tau.dtype)
        self.seen[indices] = True

    def _check_indices(self, indices: torch.Tensor, b: int) -> None:
        if not isinstance(indices, torch.Tensor) or indices.shape != (b,) or (
                indices.is_floating_point() or indices.dtype == torch.bool):
            raise ValueError(f"expected integer sample indices of shape ({b},), got "
                             f"{getattr(indices, 'shape', type(indices))}")
        if b < 2:
            raise ValueError("iSogCLR needs at least 2 samples per batch for negatives")
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= self.num_samples):
            raise ValueError(f"sample indices must lie in [0, {self.num_samples}), got "
                             f"[{int(indices.min())}, {int(indices.max())}]")
