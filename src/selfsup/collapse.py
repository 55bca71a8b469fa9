"""Label-free measures of a representation: RankMe, the embeddings' spread, and a collapse check
built on both. A low module: training monitors and evaluation both read it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def rankme(features: np.ndarray | torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023, "RankMe: Assessing the downstream performance of pretrained
    self-supervised representations by their rank", eq. 1): exp of the entropy of the normalized
    singular values, p_k = s_k / ||s||_1 + eps, RankMe = exp(-sum_k p_k log p_k)."""
    z = torch.as_tensor(features, dtype=torch.float64)
    s = torch.linalg.svdvals(z)
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def embedding_std(features: np.ndarray | torch.Tensor) -> float:
    """Mean over dimensions of the per-dimension std of the L2-normalized embeddings (the
    collapse indicator of Chen & He 2021, "Exploring Simple Siamese Representation Learning",
    sec. 4.1): 0 when every input maps to one point, about 1/sqrt(D) for spread-out ones."""
    z = F.normalize(torch.as_tensor(features, dtype=torch.float64), dim=1)  # (N, D)
    return float(z.std(dim=0).mean())


@dataclass(frozen=True)
class CollapseCheck:
    """Thresholds for calling a representation collapsed.

    Collapsed when RankMe < max(``min_rank``, ``min_rank_fraction`` x min(D, ``input_dim``)),
    or when the normalized embeddings' std x sqrt(D) < ``min_std_ratio`` (1 is an isotropic
    spread).

    ``input_dim`` is the number of values an input is made of (C x H x W pixels; a table row's
    raw-feature width, `TablePreprocessing.input_dim`). The rank floor is a fraction of the
    directions a healthy representation can fill: D for an image encoder (D < C x H x W), but a
    representation computed from a row of F values lies on an F-dimensional manifold and its
    spectrum concentrates in O(F) directions however wide it is. T-JEPA's flattened tokens of
    a 30-feature row span (1 + 30) x 64 = 1,984 dims with a RankMe of 15-30 on a good run: a
    floor of 1% of D (19.8) called that collapsed, 1% of min(D, 30) (floor 2) does not, and a
    constant representation (RankMe ~1) is still caught.
    """

    min_rank: float = 2.0
    min_rank_fraction: float = 0.01
    min_std_ratio: float = 0.01

    def rank_floor(self, dim: int, input_dim: int | None = None) -> float:
        span = dim if input_dim is None else min(dim, input_dim)
        return max(self.min_rank, self.min_rank_fraction * span)

    def reasons(self, rank: float, std: float, dim: int,
                input_dim: int | None = None) -> list[str]:
        out = []
        rank_floor = self.rank_floor(dim, input_dim)
        if rank < rank_floor:
            of = f"{dim} dims" if input_dim is None or input_dim >= dim else \
                f"min({dim} dims, {input_dim} input values)"
            out.append(f"effective rank (RankMe) {rank:.2f} < {rank_floor:.2f} "
                       f"({self.min_rank_fraction:g} of {of})")
        std_floor = self.min_std_ratio / math.sqrt(dim)
        if std < std_floor:
            out.append(f"embedding std {std:.2e} < {std_floor:.2e}")
        return out
