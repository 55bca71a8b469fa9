"""Masked-modelling objectives: reconstruct what the encoder was not shown."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class MaskedReconstruction(nn.Module):
    """MAE's pixel reconstruction loss (He et al. 2021, "Masked Autoencoders Are Scalable
    Vision Learners", sec. 3 "Reconstruction target"): the mean squared error between predicted
    and target patches, averaged over the masked patches only::

        l_k = mean_j (pred_kj - t_kj)^2                    (per patch k, over its p*p*C values)
        L   = sum_k m_k l_k / sum_k m_k                    (m_k = 1 if patch k was masked)

    With ``norm_pix`` the target is each patch normalized by its own mean and standard
    deviation, which the paper finds improves representations (Table 1d)::

        t_kj = (x_kj - mu_k) / sqrt(sigma_k^2 + 1e-6)

    with sigma_k^2 the *unbiased* variance over the patch's values, as the official code's
    ``Tensor.var`` computes it.

    Each sample contributes the same number of masked patches, so under data parallelism the
    average of the ranks' losses is the global-batch loss: no collective is needed.
    """

    distributed_loss: ClassVar[str] = "local"

    def __init__(self, norm_pix: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_pix = norm_pix
        self.eps = eps

    def target(self, patches: torch.Tensor) -> torch.Tensor:
        """The reconstruction target of image patches (B, L, p*p*C)."""
        if not self.norm_pix:
            return patches
        mean = patches.mean(dim=-1, keepdim=True)  # (B, L, 1)
        var = patches.var(dim=-1, keepdim=True)  # unbiased, (B, L, 1)
        return (patches - mean) / (var + self.eps) ** 0.5

    def forward(self, pred: torch.Tensor, target_patches: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """``pred`` and ``target_patches`` (B, L, p*p*C), ``mask`` (B, L) with 1 = masked."""
        if pred.shape != target_patches.shape or mask.shape != pred.shape[:2]:
            raise ValueError(f"expected pred and target (B, L, D) and mask (B, L), got "
                             f"{tuple(pred.shape)}, {tuple(target_patches.shape)} and "
                             f"{tuple(mask.shape)}")
        per_patch = self.per_patch(pred, target_patches)  # (B, L)
        mask = mask.to(per_patch.dtype)
        return (per_patch * mask).sum() / mask.sum()

    def per_patch(self, pred: torch.Tensor, target_patches: torch.Tensor) -> torch.Tensor:
        """Each patch's error l_k (B, L), in float32 at least (HPM's loss predictor learns it)."""
        # float32 at least: bf16 squared errors summed over thousands of patches lose digits
        dtype = torch.promote_types(pred.dtype, torch.float32)
        target = self.target(target_patches.to(dtype))
        return (pred.to(dtype) - target).pow(2).mean(dim=-1)  # (B, L)


class RelativeLossPrediction(nn.Module):
    """HPM's loss-predictor objective, relative form (Wang et al. 2023, "Hard Patches Mining for
    Masked Image Modeling", sec. 3, "relative loss"; the official ``forward_learning_loss`` with
    ``relative=True``): for every ordered pair (i, j) of one image's masked patches whose true
    reconstruction errors differ, a binary cross-entropy that patch j is the harder::

        y_ij = 1[l_j > l_i],   s_ij = sigmoid(p_j - p_i)
        L    = - sum_{l_i != l_j} [y_ij log(s_ij + 1e-6) + (1 - y_ij) log(1 - s_ij + 1e-6)]
               / #{(i, j): l_i != l_j}

    with p the predicted and l the (detached) true per-patch errors. Only the order of the
    errors is learnt, never their values, which the paper finds keeps the predictor from
    overfitting to the exact losses. The 1e-6 inside the logs is the official code's.

    Every sample brings the same number of patches, but the count of unequal pairs can differ
    between ranks; that count is ~n(n-1) per image with continuous errors, so the mean of the
    ranks' losses is the global loss to within ties: no collective is needed.
    """

    distributed_loss: ClassVar[str] = "local"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``pred`` (B, n) predicted and ``target`` (B, n) true per-patch errors, n patches."""
        if pred.shape != target.shape or pred.ndim != 2:
            raise ValueError(f"expected pred and target (B, n), got {tuple(pred.shape)} and "
                             f"{tuple(target.shape)}")
        dtype = torch.promote_types(pred.dtype, torch.float32)
        pred, target = pred.to(dtype), target.detach().to(dtype)
        harder = target[:, None, :] > target[:, :, None]  # (B, n, n): [b, i, j] = l_j > l_i
        easier = target[:, None, :] < target[:, :, None]
        s = torch.sigmoid(pred[:, None, :] - pred[:, :, None])  # (B, n, n)
        loss = -(harder * torch.log(s + 1e-6) + easier * torch.log(1 - s + 1e-6))
        return loss.sum() / (harder | easier).sum().clamp_min(1)
