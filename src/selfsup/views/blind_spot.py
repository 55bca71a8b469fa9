"""Noise2Void's blind-spot masking (Krull et al. 2019, "Noise2Void - Learning Denoising from
Single Noisy Images"), batched on tensors: a few pixels of each patch are chosen on a stratified
grid and replaced by a pixel drawn from their neighbourhood, so a network trained to predict the
original value there cannot copy its input and learns the signal, not the pixel-independent
noise.

Following the official n2v code (`get_stratified_coords`, manipulator `uniform_withCP`): one
pixel per square box of side round(sqrt(H * W / n)) at a uniform offset (pixels past the border
dropped), n = H * W * fraction (the paper's 0.198% of a 64 x 64 patch: 8 pixels); each replaced by
a uniformly drawn pixel of the (2r + 1)^2 window around it (r = 5), the window shifted inside
the patch at the borders and its centre included, every channel taken from the same neighbour.
"""

from __future__ import annotations

import math

import torch

N2V_FRACTION = 0.00198  # n2v_perc_pix = 0.198 (%)
N2V_RADIUS = 5  # n2v_neighborhood_radius


def box_side(height: int, width: int, fraction: float) -> int:
    """The stratified grid's box side: round(sqrt(area / pixels)), at least 1."""
    pixels = max(1.0, height * width * fraction)
    return max(1, round(math.sqrt(height * width / pixels)))


def stratified_mask(batch: int, height: int, width: int, fraction: float = N2V_FRACTION,
                    generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, H, W) bool: one pixel per box of `box_side` at a uniform offset in each image,
    those falling past the border dropped (as the official code)."""
    side = box_side(height, width, fraction)
    rows, cols = math.ceil(height / side), math.ceil(width / side)
    offset = torch.randint(0, side, (batch, rows, cols, 2), generator=generator)  # (B, r, c, 2)
    i = torch.arange(rows).view(1, rows, 1) * side + offset[..., 0]  # (B, r, c)
    j = torch.arange(cols).view(1, 1, cols) * side + offset[..., 1]
    inside = (i < height) & (j < width)
    b = torch.arange(batch).view(batch, 1, 1).expand_as(i)
    mask = torch.zeros(batch, height, width, dtype=torch.bool)
    mask[b[inside], i[inside], j[inside]] = True
    return mask.to(device)


def window_start(centre: torch.Tensor, size: int, radius: int) -> torch.Tensor:
    """The first row (or column) of the (2r + 1)-wide window around ``centre``, shifted to lie
    inside a side of ``size`` (the official `get_subpatch`); a side shorter than the window
    starts at 0 and the window is the whole side."""
    return (centre - radius).clamp(min=0).clamp(max=max(0, size - (2 * radius + 1)))


def neighbour_coords(i: torch.Tensor, j: torch.Tensor, height: int, width: int, radius: int,
                     di: torch.Tensor, dj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The neighbours at offsets (di, dj) in [0, 2r] inside each pixel's window, each offset
    taken modulo the window's extent where the patch is smaller than the window."""
    span_i, span_j = min(2 * radius + 1, height), min(2 * radius + 1, width)
    return (window_start(i, height, radius) + di % span_i,
            window_start(j, width, radius) + dj % span_j)


def blind_spot(images: torch.Tensor, fraction: float = N2V_FRACTION, radius: int = N2V_RADIUS,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy patches (B, C, H, W) -> (the patches with their blind spots replaced, the mask
    (B, H, W) bool the loss reads). The replacement is drawn on the CPU generator, so a seeded
    run masks the same pixels on any device."""
    batch, _, height, width = images.shape
    mask = stratified_mask(batch, height, width, fraction, generator)
    b, i, j = mask.nonzero(as_tuple=True)  # (M,) each
    d = torch.randint(0, 2 * radius + 1, (2, len(b)), generator=generator)
    ni, nj = neighbour_coords(i, j, height, width, radius, d[0], d[1])
    b, i, j, ni, nj = (t.to(images.device) for t in (b, i, j, ni, nj))
    out = images.clone()
    out[b, :, i, j] = images[b, :, ni, nj]
    return out, mask.to(images.device)
