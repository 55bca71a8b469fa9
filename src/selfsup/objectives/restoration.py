"""Losses that train an image-to-image model without clean targets."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..distributed import rank_mean


class BlindSpotMSE(nn.Module):
    """Noise2Void's loss (Krull et al. 2019, sec. 3: the squared error on the masked pixels
    only, the network's input there replaced by a neighbour, views/blind_spot.py): with M the
    blind-spot pixels of the batch and C channels,

        L = 1 / (|M| C) sum_{(b, i, j) in M} sum_c (f(x~)[b, c, i, j] - x[b, c, i, j])^2,

    x the noisy patch itself (no clean image anywhere). Pixels outside M give no gradient.

    The number of blind spots differs between patches cut by the border of their grid, so under
    data parallelism the denominator is the ranks' mean count (`rank_mean`): the global batch's
    loss and gradient exactly.
    """

    distributed_loss: ClassVar[str] = "local"

    def forward(self, predicted: torch.Tensor, noisy: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """predicted, noisy: (B, C, H, W); mask: (B, H, W) bool -> scalar."""
        if predicted.shape != noisy.shape or mask.shape != (noisy.shape[0], *noisy.shape[2:]):
            raise ValueError(f"prediction {tuple(predicted.shape)}, input "
                             f"{tuple(noisy.shape)} and mask {tuple(mask.shape)} do not match")
        if not mask.any():
            raise ValueError("no blind-spot pixel in the batch: the patches are too small for "
                             "the masked fraction")
        squared = (predicted.float() - noisy.float()).pow(2).sum(dim=1)  # (B, H, W)
        count = mask.sum().to(squared.dtype) * noisy.shape[1]
        return (squared * mask).sum() / rank_mean(count.detach())
