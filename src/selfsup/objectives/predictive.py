"""Prediction in representation space (JEPA: Assran et al. 2023, I-JEPA; Thimonier et al. 2024,
T-JEPA)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class LatentPredictionMSE(nn.Module):
    """T-JEPA's loss (their sec. 3, the authors' ``MSELoss``): the mean squared error between
    the predicted and the target encoder's representations of the target features,

        L = 1 / (M B n d) sum_{m, b, j, k} (s_hat[m, b, j, k] - sg(s[m, b, j, k]))^2,

    averaged over the M targets, B rows, n target features and d channels; the targets carry no
    gradient (sg: stop-gradient; the target encoder is an EMA of the context encoder).

    Every row contributes M x n x d terms, so under data parallelism the average of the ranks'
    losses is the global-batch loss: no collective is needed.
    """

    distributed_loss: ClassVar[str] = "local"

    def forward(self, predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """predicted, targets: (M, B, n, d) -> scalar."""
        if predicted.shape != targets.shape:
            raise ValueError(f"prediction {tuple(predicted.shape)} and target "
                             f"{tuple(targets.shape)} shapes differ")
        return nn.functional.mse_loss(predicted.float(), targets.detach().float())
