"""Shared input checks and precision rule for the two-view objectives."""

from __future__ import annotations

import torch


def check_two_views(z1: torch.Tensor, z2: torch.Tensor) -> None:
    """Raise ``ValueError`` unless z1 and z2 are floating (B, D) tensors of the same shape."""
    if z1.dim() != 2 or z2.dim() != 2:
        raise ValueError(
            f"expected two (batch, dim) projections, got shapes {tuple(z1.shape)} and "
            f"{tuple(z2.shape)}"
        )
    if z1.shape != z2.shape:
        raise ValueError(
            f"the two views' projections must have the same shape, got {tuple(z1.shape)} and "
            f"{tuple(z2.shape)}"
        )
    if not (z1.is_floating_point() and z2.is_floating_point()):
        raise ValueError(f"projections must be floating point, got {z1.dtype} and {z2.dtype}")


def loss_precision(z: torch.Tensor) -> torch.Tensor:
    """Upcast half precisions to float32; float32 and float64 pass through unchanged.

    exp(sim / tau) and sums of squared correlations over thousands of dimensions lose too much
    in bf16/fp16, while float64 stays float64 so tests can compare with a float64 reference.
    """
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
