"""Sorting objectives: learn by putting similarities in the right order, through a relaxed sort."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ._inputs import check_two_views, loss_precision

RELAXATIONS = ("cauchy", "logistic")


@lru_cache(maxsize=64)
def odd_even_comparators(n: int) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """The odd-even transposition sorting network on n wires: n layers of (low, high) wires.

    Layer l compares the neighbours (i, i + 1) for every i of the parity of l; n such layers
    sort any n inputs (Knuth, TAOCP vol. 3, 5.3.4).
    """
    return tuple(
        (tuple(range(layer % 2, n - 1, 2)), tuple(range(layer % 2 + 1, n, 2)))
        for layer in range(n)
    )


def relaxed_sort(scores: torch.Tensor, steepness: float = 1.0, relaxation: str = "cauchy"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row ascending through a differentiable sorting network.

    Petersen et al. 2021, "Differentiable Sorting Networks for Scalable Sorting and Ranking
    Supervision", and 2022, "Monotonic Differentiable Sorting Networks" (the Cauchy
    relaxation); their diffsort library is what GroCo uses. Every comparator of
    :func:`odd_even_comparators` takes wires (a, b), low then high, and swaps them softly with
    alpha = f(steepness * (b - a)), the probability that they are already in order::

        min' = alpha * a + (1 - alpha) * b        max' = (1 - alpha) * a + alpha * b
        f(v) = 1/2 + arctan(v) / pi   ("cauchy", the relaxation GroCo uses)
        f(v) = 1 / (1 + exp(-v))      ("logistic")

    The same mixing applied to the columns of the identity gives the relaxed permutation matrix
    P, with P[i, q] the probability that input i ends at sorted position q; every comparator is
    a convex mix of two columns, so P stays doubly stochastic and ``sorted = scores @ P``. With
    ``steepness=math.inf`` the swaps are hard and the sort exact (ties stay half-mixed).

    scores: (B, n). Returns the relaxed sorted values (B, n) and P (B, n, n).
    """
    if scores.dim() != 2:
        raise ValueError(f"expected scores of shape (batch, n), got {tuple(scores.shape)}")
    if not steepness > 0:
        raise ValueError(f"steepness must be positive, got {steepness}")
    if relaxation not in RELAXATIONS:
        raise ValueError(f"unknown relaxation {relaxation!r}; valid: {', '.join(RELAXATIONS)}")
    batch, n = scores.shape
    x = scores
    permutation = torch.eye(n, dtype=scores.dtype, device=scores.device).expand(batch, n, n)
    for low, high in odd_even_comparators(n):
        if not low:
            continue  # a single wire has no neighbour
        lo = torch.tensor(low, device=scores.device)
        hi = torch.tensor(high, device=scores.device)
        a, b = x[:, lo], x[:, hi]  # (B, m) each
        alpha = _in_order_probability(b - a, steepness, relaxation)  # (B, m)
        x = x.index_copy(1, lo, alpha * a + (1 - alpha) * b)
        x = x.index_copy(1, hi, (1 - alpha) * a + alpha * b)
        pa, pb = permutation[:, :, lo], permutation[:, :, hi]  # (B, n, m) each
        w = alpha[:, None, :]
        permutation = permutation.index_copy(2, lo, w * pa + (1 - w) * pb)
        permutation = permutation.index_copy(2, hi, (1 - w) * pa + w * pb)
    return x, permutation


def _in_order_probability(gap: torch.Tensor, steepness: float, relaxation: str) -> torch.Tensor:
    if math.isinf(steepness):
        return (gap > 0).to(gap.dtype) + 0.5 * (gap == 0).to(gap.dtype)
    v = steepness * gap
    if relaxation == "cauchy":
        return 0.5 + torch.atan(v) / math.pi
    return torch.sigmoid(v)


class GroCo(nn.Module):
    """Group ordering constraints: every positive must rank above the hardest negatives.

    Shvetsova et al. 2023, "Learning by Sorting: Self-supervised Learning with Group Ordering
    Constraints", the GroCo loss as in the official code's two-view setting. Each projection z_i of
    either view is an anchor; its positive is the other view of its sample and its negatives are
    the k most similar other samples of its own view (k = ``negatives``, at most N - 1 in a
    global batch of N). With cosine similarities, the group is pre-ordered into the order it
    should have, negatives ascending and then the positive::

        s = (s_neg(k), ..., s_neg(1), s_pos)            n = k + 1 scores
        P = relaxed_sort(s)                              (n, n), see :func:`relaxed_sort`
        q_m = sum_{positions t >= k} P[m, t]             probability that score m ranks top
        l(i) = (1/n) sum_m BCE(q_m, [m is the positive])
        L = (1 / 2N) * sum over all 2N anchors i of l(i)

    A perfectly ordered group gives P = I only in the hard limit; with the relaxation, a
    positive barely above a negative still costs, so the loss keeps pushing for a margin (the
    paper's implicit emphasis on hard pairs). The official code's second term, BCE on the
    negative ranks, equals the first (rows and columns of P sum to 1) and is omitted.
    Defaults are the official configs': Cauchy relaxation, steepness 1, 10 negatives, and a
    stop-gradient on the positives and negatives so only the anchor is pulled. Under
    ``torch.distributed`` the negatives come from the global batch and each rank's loss is the
    mean over its own anchors; every rank must hold the same number of samples.
    """

    distributed_loss: ClassVar[str] = "local_anchors"

    def __init__(self, negatives: int = 10, steepness: float = 1.0, relaxation: str = "cauchy",
                 stop_gradient: bool = True) -> None:
        super().__init__()
        if negatives < 1:
            raise ValueError(f"negatives must be at least 1, got {negatives}")
        if not steepness > 0:
            raise ValueError(f"steepness must be positive, got {steepness}")
        if relaxation not in RELAXATIONS:
            raise ValueError(f"unknown relaxation {relaxation!r}; valid: {', '.join(RELAXATIONS)}")
        self.negatives = negatives
        self.steepness = steepness
        self.relaxation = relaxation
        self.stop_gradient = stop_gradient

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """z1, z2: (b, D) projections of the two views on this rank; returns a scalar loss."""
        check_two_views(z1, z2)
        if z1.shape[0] * distributed.world_size() < 2:
            raise ValueError("GroCo needs at least 2 samples in the batch to have a negative")
        z1, z2 = loss_precision(z1), loss_precision(z2)
        with torch.autocast(device_type=z1.device.type, enabled=False):
            z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)  # (b, D)
            return (self._ordering_loss(z1, z2) + self._ordering_loss(z2, z1)) / 2

    def _ordering_loss(self, anchor: torch.Tensor, other_view: torch.Tensor) -> torch.Tensor:
        b = anchor.shape[0]
        same_view = distributed.gather_with_grad(anchor)  # (n, D)
        if self.stop_gradient:
            same_view, other_view = same_view.detach(), other_view.detach()
        positive = (anchor * other_view).sum(1, keepdim=True)  # (b, 1)
        similarity = anchor @ same_view.T  # (b, n)
        own = torch.arange(b, device=anchor.device) + distributed.rank() * b  # (b,)
        similarity = similarity.scatter(1, own[:, None], float("-inf"))  # never its own negative
        k = min(self.negatives, similarity.shape[1] - 1)
        hardest = similarity.topk(k, dim=1).values.flip(1)  # (b, k) ascending
        scores = torch.cat((hardest, positive), dim=1)  # (b, k + 1) in the order it should have
        _, permutation = relaxed_sort(scores, self.steepness, self.relaxation)  # (b, n, n)
        ranked_top = permutation[:, :, k:].sum(2).clamp(0, 1)  # (b, k + 1)
        is_positive = torch.zeros_like(ranked_top)
        is_positive[:, k:] = 1
        return F.binary_cross_entropy(ranked_top, is_positive)
