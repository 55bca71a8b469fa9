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
        # float32 at least: bf16 squared errors summed over thousands of patches lose digits
        dtype = torch.promote_types(pred.dtype, torch.float32)
        target = self.target(target_patches.to(dtype))
        per_patch = (pred.to(dtype) - target).pow(2).mean(dim=-1)  # (B, L)
        mask = mask.to(dtype)
        return (per_patch * mask).sum() / mask.sum()
