"""Triplet ranking objectives: a positive must be closer to the anchor than a negative, by a
margin."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ._inputs import check_two_views, loss_precision


class CosineTriplet(nn.Module):
    """The ranking loss of Wang and Gupta 2015 ("Unsupervised Learning of Visual Representations
    using Videos", eq. 2) as Wang, He and Gupta 2017 ("Transitive Invariance for Self-supervised
    Visual Representation Learning", sec. 4) train their Triplet-Siamese network with, over the
    positive pairs of a batch of two views::

        D(x, y) = 1 - x.y / (|x| |y|)
        L = mean_a mean_{p in P(a)} mean_{n in N_k(a)} max(0, D(a, p) - D(a, n) + margin)

    Anchors a are every view of every local sample. P(a), the positives of a view of sample i:
    the other view of i (the intra-instance edge) and the other view of every j with
    ``positives[i, j]`` (a transitive pair: i - j an inter-instance edge, j - j' intra). N(a), the
    candidate negatives: both views of every sample that is not i, not a positive of i and not
    ``ignore``d; N_k(a) keeps the ``hard_negatives`` of them with the highest loss -- the most
    similar to a, as the loss is decreasing in D(a, n) -- the hard-negative mining of Wang and
    Gupta 2015, sec. 3.3 (None keeps all). With fewer candidates than k, all of them count; an
    anchor without candidates adds 0. Defaults: margin 0.5 (both papers).

    Under ``torch.distributed`` the candidates are every rank's views (all-gathered, with
    gradient) and the anchors this rank's: ``positives`` and ``ignore`` are (b, B) with columns in
    the gathered order (rank 0's samples first); every rank must hold the same b. Each rank's
    loss is the mean over its own anchors, so the mean of the ranks' losses is the full-batch
    loss.
    """

    distributed_loss: ClassVar[str] = "local_anchors"

    def __init__(self, margin: float = 0.5, hard_negatives: int | None = 4) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be non-negative, got {margin}")
        if hard_negatives is not None and hard_negatives < 1:
            raise ValueError(f"hard_negatives must be >= 1 or None (all), got {hard_negatives}")
        self.margin = margin
        self.hard_negatives = hard_negatives

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, positives: torch.Tensor | None = None,
                ignore: torch.Tensor | None = None) -> torch.Tensor:
        """z1, z2: (b, D) embeddings of two views of this rank's samples; positives, ignore:
        (b, B) bool over the global batch's samples, or None (no inter-instance edges)."""
        check_two_views(z1, z2)
        b = z1.shape[0]
        n1, n2 = F.normalize(loss_precision(z1), dim=1), F.normalize(loss_precision(z2), dim=1)
        with torch.autocast(device_type=n1.device.type, enabled=False):
            c1, c2 = distributed.gather_with_grad(n1), distributed.gather_with_grad(n2)
            big_b = c1.shape[0]
            edges = torch.zeros(b, big_b, dtype=torch.bool, device=n1.device)
            for name, given in (("positives", positives), ("ignore", ignore)):
                if given is not None and given.shape != (b, big_b):
                    raise ValueError(f"{name} must be (local batch, global batch) = "
                                     f"{(b, big_b)}, got {tuple(given.shape)}")
            own = torch.arange(b, device=n1.device) + distributed.rank() * b
            edges[torch.arange(b, device=n1.device), own] = True  # (b, B): i itself
            if positives is not None:
                edges |= positives.to(n1.device, torch.bool)
            skip = edges if ignore is None else edges | ignore.to(n1.device, torch.bool)
            anchors = torch.cat((n1, n2))  # (2b, D): view 1 of every sample, then view 2
            candidates = torch.cat((c1, c2))  # (2B, D)
            sim = anchors @ candidates.T  # (2b, 2B) cosine similarities
            view_a = torch.arange(2 * b, device=n1.device) >= b
            view_c = torch.arange(2 * big_b, device=n1.device) >= big_b
            positive = edges.repeat(2, 2) & (view_a[:, None] != view_c[None, :])  # (2b, 2B)
            negative = ~skip.repeat(2, 2)
            k = negative.shape[1] if self.hard_negatives is None else min(
                self.hard_negatives, negative.shape[1])
            hard, _ = sim.masked_fill(~negative, float("-inf")).topk(k, dim=1)  # (2b, k)
            valid = torch.isfinite(hard)
            d_an = 1 - hard.masked_fill(~valid, 0.0)  # (2b, k)
            # only the positive pairs, a few per anchor: (P,) anchor and candidate indices
            a_idx, p_idx = positive.nonzero(as_tuple=True)
            d_ap = 1 - sim[a_idx, p_idx]  # (P,)
            hinge = F.relu(d_ap[:, None] - d_an[a_idx] + self.margin)  # (P, k)
            kept = valid[a_idx]
            per_pair = (hinge * kept).sum(1) / kept.sum(1).clamp_min(1)  # (P,)
            per_anchor = torch.zeros_like(sim[:, 0]).index_add(0, a_idx, per_pair)
            per_anchor = per_anchor / positive.sum(1)  # every anchor has its other view
            return per_anchor.mean()
