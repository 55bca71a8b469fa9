"""Weighting several self-supervised losses against each other."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class UncertaintyWeighting(nn.Module):
    """Learned homoscedastic-uncertainty weights (Kendall, Gal and Cipolla 2018, "Multi-Task
    Learning Using Uncertainty to Weigh Losses"), in the form SiT's first version uses (Atito et
    al. 2021, "SiT: Self-supervised vIsion Transformer", v1; Sara-Ahmed/SiT main.py
    ``uncertaintyLoss`` before the momentum-teacher rewrite), after Liebel and Koerner 2018::

        L = sum_t ( 0.5 / sigma_t^2 * L_t + log(1 + sigma_t^2) )

    one learnable sigma_t per task, each starting at 1. The log(1 + sigma^2) regularizer, unlike
    Kendall's log sigma, stays positive, so no task can buy a negative total by growing its
    sigma. The sigmas are trained with the network.
    """

    distributed_loss: ClassVar[str] = "local"

    def __init__(self, tasks: int) -> None:
        super().__init__()
        if tasks < 1:
            raise ValueError(f"need at least one task, got {tasks}")
        self.sigma = nn.Parameter(torch.ones(tasks))

    def forward(self, losses: list[torch.Tensor]) -> torch.Tensor:
        """``losses``: one scalar per task, in a fixed order; their weighted sum."""
        if len(losses) != len(self.sigma) or any(loss.ndim for loss in losses):
            raise ValueError(f"expected {len(self.sigma)} scalar losses, got "
                             f"{[tuple(loss.shape) for loss in losses]}")
        var = self.sigma.float() ** 2  # (T,)
        stacked = torch.stack([loss.float() for loss in losses])  # (T,)
        return (0.5 / var * stacked + torch.log1p(var)).sum()
