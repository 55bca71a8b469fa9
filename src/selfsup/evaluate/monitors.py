"""Label-free monitors."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def rankme(features: np.ndarray | torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023, "RankMe: Assessing the downstream performance of pretrained
    self-supervised representations by their rank", eq. 1): exp of the entropy of the normalized
    singular values, p_k = s_k / ||s||_1 + eps, RankMe = exp(-sum_k p_k log p_k)."""
    z = torch.as_tensor(features, dtype=torch.float64)
    s = torch.linalg.svdvals(z)
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))
