"""Contrastive objectives against a queue of keys: MoCo v2's InfoNCE and MoCHi's hard negative
mixing. The queue itself (and the momentum encoder that fills it) is a method component,
``selfsup.methods.momentum``; these losses only read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._inputs import loss_precision
from .contrastive import TemperatureScaled


def check_queue_inputs(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor) -> None:
    """Raise ``ValueError`` unless q, k are floating (B, D) and the queue is floating (K, D)."""
    if q.dim() != 2 or q.shape != k.shape:
        raise ValueError(f"expected query and key projections of one (batch, dim) shape, got "
                         f"{tuple(q.shape)} and {tuple(k.shape)}")
    if queue.dim() != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f"expected a (size, {q.shape[1]}) queue of keys, got {tuple(queue.shape)}")
    if not (q.is_floating_point() and k.is_floating_point() and queue.is_floating_point()):
        raise ValueError(f"projections must be floating point, got {q.dtype}, {k.dtype} and "
                         f"{queue.dtype}")


class QueueInfoNCE(TemperatureScaled):
    """InfoNCE against a queue (He et al. 2020, "Momentum Contrast for Unsupervised Visual
    Representation Learning", eq. 1; Chen et al. 2020, "Improved Baselines with Momentum
    Contrastive Learning" for v2's MLP head, augmentations and temperature)::

        L_q = -log( exp(q.k+ / T) / (exp(q.k+ / T) + sum_{n in queue} exp(q.n / T)) )

    averaged over the queries. q, k+ and the queue keys are L2-normalized; the key and the queue
    carry no gradient (they come from the momentum encoder). Each rank averages over its own
    queries; the queue is the same on every rank, so no collective is needed here.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__(temperature)

    def forward(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        """q: (B, D) queries, k: (B, D) their positive keys, queue: (K, D); a scalar loss."""
        return self.queue_loss(q, k, queue)

    def queue_loss(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                   extra_negatives: Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                                             torch.Tensor] | None = None) -> torch.Tensor:
        """The loss above; ``extra_negatives(q, queue, sims)`` (unit-norm q and queue, and
        sims = q queue^T with its gradient) may add (B, M) negative similarities to each query's
        denominator (MoCHi's synthetic negatives)."""
        check_queue_inputs(q, k, queue)
        q = loss_precision(q)
        k, queue = k.to(q.dtype), queue.to(q.dtype)
        with torch.autocast(device_type=q.device.type, enabled=False):
            q = F.normalize(q, dim=1)
            k, queue = F.normalize(k.detach(), dim=1), F.normalize(queue.detach(), dim=1)
            sims = q @ queue.T  # (B, K)
            columns = [(q * k).sum(dim=1, keepdim=True), sims]  # (B, 1), (B, K)
            if extra_negatives is not None:
                columns.append(extra_negatives(q, queue, sims))  # (B, M)
            logits = torch.cat(columns, dim=1) / self.temperature
            return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long,
                                                       device=q.device))


@dataclass
class Mixing:
    """Which hard negatives MoCHi mixes for a batch of queries, and how.

    ``hard`` (B, N) are the queue indices of each query's N hardest negatives; ``pairs``
    (B, s, 2) and ``partners`` (B, s') are queue indices drawn from ``hard``; ``alpha`` (B, s) and
    ``beta`` (B, s') the mixing coefficients.
    """

    hard: torch.Tensor
    pairs: torch.Tensor
    alpha: torch.Tensor
    partners: torch.Tensor
    beta: torch.Tensor


@dataclass
class HardNegatives(Mixing):
    """A ``Mixing`` with its synthetic negatives spelled out: ``vectors`` (B, s + s', D) holds the
    s mixed negatives, then the s' query-mixed ones, all unit norm."""

    vectors: torch.Tensor


def draw_mixing(sims: torch.Tensor, n_hard: int, n_mixed: int, n_query_mixed: int,
                generator: torch.Generator | None = None) -> Mixing:
    """MoCHi's random choices for (B, K) query-to-queue cosines ``sims``: each query's
    ``n_hard`` most similar keys, s pairs of them with a ~ U(0, 1) and s' partners with
    b ~ U(0, 0.5) (Kalantidis et al. 2020, sec. 4)."""
    with torch.no_grad():
        b, k = sims.shape
        if not 1 <= n_hard <= k:
            raise ValueError(f"n_hard must be between 1 and the queue size {k}, got {n_hard}")
        hard = sims.topk(n_hard, dim=1).indices  # (B, N)
        device = generator.device if generator else sims.device

        def draw(count: int) -> torch.Tensor:
            """Queue indices of ``count`` random picks among each query's hard negatives."""
            picks = torch.randint(n_hard, (b, count), generator=generator, device=device)
            return hard.gather(1, picks.to(sims.device))  # (B, count)

        def uniform(count: int, high: float) -> torch.Tensor:
            u = torch.rand((b, count), generator=generator, dtype=sims.dtype, device=device)
            return high * u.to(sims.device)

        pairs = torch.stack((draw(n_mixed), draw(n_mixed)), dim=2)  # (B, s, 2)
        alpha = uniform(n_mixed, 1.0)  # (B, s)
        partners = draw(n_query_mixed)  # (B, s')
        beta = uniform(n_query_mixed, 0.5)  # (B, s')
    return Mixing(hard, pairs, alpha, partners, beta)


def mix_hard_negatives(q: torch.Tensor, queue: torch.Tensor, n_hard: int, n_mixed: int,
                       n_query_mixed: int, generator: torch.Generator | None = None
                       ) -> HardNegatives:
    """MoCHi's feature-level mixing (Kalantidis et al. 2020, sec. 4, eqs. 3 and 4), spelled out.

    For each unit-norm query q with its N hardest (most similar) queue keys Q^N::

        h_k  = h~_k / |h~_k|,   h~_k  = a_k n_i + (1 - a_k) n_j,  n_i, n_j in Q^N,  a_k ~ U(0, 1)
        h'_k = h'~_k / |h'~_k|, h'~_k = b_k q + (1 - b_k) n_j,    n_j in Q^N,       b_k ~ U(0, 0.5)

    b < 0.5 keeps the query's own share below the negative's, so h' stays a negative. Everything
    is computed without gradient: the paper treats the synthetic points as constants. This is
    the literal form (the reference in the tests); the loss uses ``mixed_logits``, which gives
    the same q.h without building the (B, s + s', D) vectors.
    """
    with torch.no_grad():
        q = F.normalize(q.detach(), dim=1)  # (B, D)
        queue = F.normalize(queue.detach(), dim=1)  # (K, D)
        m = draw_mixing(q @ queue.T, n_hard, n_mixed, n_query_mixed, generator)
        alpha, beta = m.alpha[..., None], m.beta[..., None]
        mixed = alpha * queue[m.pairs[..., 0]] + (1 - alpha) * queue[m.pairs[..., 1]]  # (B, s, D)
        query_mixed = beta * q[:, None] + (1 - beta) * queue[m.partners]  # (B, s', D)
        vectors = F.normalize(torch.cat((mixed, query_mixed), dim=1), dim=2)  # (B, s + s', D)
    return HardNegatives(m.hard, m.pairs, m.alpha, m.partners, m.beta, vectors)


def mixed_logits(q: torch.Tensor, queue: torch.Tensor, sims: torch.Tensor, m: Mixing
                 ) -> torch.Tensor:
    """q.h for MoCHi's synthetic negatives in closed form, (B, s + s'), from the cosines
    ``sims`` = q queue^T (B, K) already computed for the queue term.

    With unit q, n_i, n_j and the synthetic points held constant::

        q.h_k  = (a q.n_i + (1 - a) q.n_j) / sqrt(a^2 + (1 - a)^2 + 2 a (1 - a) n_i.n_j)
        q.h'_k = (b q.q + (1 - b) q.n_j)   / sqrt(b^2 + (1 - b)^2 + 2 b (1 - b) q.n_j)

    where the denominators (|h~|, |h'~|) carry no gradient and q.q uses a detached second q,
    so the gradient with respect to q is h_k and h'_k exactly as for the spelled-out vectors.
    Writing (B, s + s', D) vectors per step and contracting them with q costs 19x MoCo's loss
    time at B = 256, K = 4096, s = 256 on the CPU, this form 7x (``benchmarks/
    queue_loss_speed.py``): it reads (B, s + s') cosines and computes only the n_i.n_j products.
    """
    a, b = m.alpha, m.beta  # (B, s), (B, s'), drawn in sims' dtype
    with torch.no_grad():
        cross = torch.einsum("bsd,bsd->bs", queue[m.pairs[..., 0]], queue[m.pairs[..., 1]])
        norm = (a**2 + (1 - a) ** 2 + 2 * a * (1 - a) * cross).clamp_min(1e-24).sqrt()  # (B, s)
        q_n = sims.detach().gather(1, m.partners)  # (B, s')
        norm_q = (b**2 + (1 - b) ** 2 + 2 * b * (1 - b) * q_n).clamp_min(1e-24).sqrt()
    mixed = (a * sims.gather(1, m.pairs[..., 0]) + (1 - a) * sims.gather(1, m.pairs[..., 1]))
    q_q = (q * q.detach()).sum(dim=1, keepdim=True)  # (B, 1): value 1, gradient q
    query_mixed = b * q_q + (1 - b) * sims.gather(1, m.partners)  # (B, s')
    return torch.cat((mixed / norm, query_mixed / norm_q), dim=1)


class MoCHi(QueueInfoNCE):
    """MoCo's queue InfoNCE with synthesized hard negatives (Kalantidis et al. 2020, "Hard
    Negative Mixing for Contrastive Learning")::

        L_q = -log( exp(q.k+/T) / (exp(q.k+/T) + sum_{n in queue} exp(q.n/T)
                                   + sum_{h in H(q)} exp(q.h/T)) )

    where H(q) are the s mixed and s' query-mixed negatives of ``mix_hard_negatives`` built from
    q's ``n_hard`` hardest queue keys. Defaults keep the paper's ImageNet-100 proportions
    (N = K/16 with K = 16384: N = 1024, s = 1024, s' = 256) for a queue of 4096.
    """

    def __init__(self, temperature: float = 0.2, n_hard: int = 256, n_mixed: int = 256,
                 n_query_mixed: int = 64) -> None:
        super().__init__(temperature)
        if n_hard < 1 or n_mixed < 0 or n_query_mixed < 0:
            raise ValueError(f"need n_hard >= 1 and n_mixed, n_query_mixed >= 0, got "
                             f"{n_hard}, {n_mixed}, {n_query_mixed}")
        self.n_hard, self.n_mixed, self.n_query_mixed = n_hard, n_mixed, n_query_mixed

    def forward(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """q: (B, D) queries, k: (B, D) positive keys, queue: (K, D); a scalar loss."""

        def mixed(q: torch.Tensor, queue: torch.Tensor, sims: torch.Tensor) -> torch.Tensor:
            m = draw_mixing(sims.detach(), self.n_hard, self.n_mixed, self.n_query_mixed,
                            generator)
            return mixed_logits(q, queue, sims, m)  # (B, s + s')

        return self.queue_loss(q, k, queue, mixed)
