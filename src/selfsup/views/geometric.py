"""Random resized crop and horizontal flip for a whole batch in one `grid_sample` call.

Why not kornia here: on small images its per-call overhead dominates. On 256 Fashion-MNIST
images (28 px -> 20 px crops, 2-core CPU) kornia's RandomResizedCrop + RandomHorizontalFlip +
ColorJitter took ~90-200 ms per view batch against ~4-12 ms for this file and photometric.py
(benchmarks/RESULTS.md, "Views alone"), i.e. most of a training step. The crop distribution
is torchvision's (Szegedy et al. 2015 as used by SimCLR): area fraction ~ U(scale), aspect ratio
log-uniform in ``ratio``, up to 10 tries to fit the image, then the whole image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TRIES = 10  # torchvision's RandomResizedCrop.get_params


def crop_boxes(batch: int, height: int, width: int, scale: tuple[float, float],
               ratio: tuple[float, float], device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample crop (w, h, cx, cy) as fractions of the image, centres in [-1, 1]. (B,) each."""
    area = torch.empty(batch, TRIES, device=device).uniform_(*scale)  # of the image's area
    log_r = torch.empty(batch, TRIES, device=device).uniform_(math.log(ratio[0]),
                                                              math.log(ratio[1]))
    aspect = log_r.exp()  # crop width / crop height, in pixels
    w = (area * aspect * height / width).sqrt()  # crop width as a fraction of the image width
    h = (area / aspect * width / height).sqrt()
    fits = (w <= 1) & (h <= 1)  # (B, TRIES)
    first = fits.int().argmax(dim=1, keepdim=True)  # the first try that fits, else 0
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    none_fit = ~fits.any(dim=1)
    # torchvision's fallback is a centre crop at the nearest allowed ratio; for the square and
    # near-square images this library trains on that is the whole image
    w, h = torch.where(none_fit, 1.0, w), torch.where(none_fit, 1.0, h)
    cx = (torch.rand(batch, device=device) * 2 - 1) * (1 - w)
    cy = (torch.rand(batch, device=device) * 2 - 1) * (1 - h)
    return w, h, cx, cy


def resized_crop_flip(x: torch.Tensor, size: int, w: torch.Tensor, h: torch.Tensor,
                      cx: torch.Tensor, cy: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Float (B, C, H, W) -> (B, C, size, size): sample b's box (w, h, cx, cy) — fractions of the
    image, centre in [-1, 1] — resized bilinearly and mirrored where ``flip``. A crop is an affine
    map of the output grid into the input, so the whole batch is one ``affine_grid`` +
    ``grid_sample``; a flip is a negative x scale in the same map."""
    b, c = x.shape[:2]
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)  # output -> input coordinates
    theta[:, 0, 0] = torch.where(flip, -w, w)
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)  # (B, S, S, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop_flip(x: torch.Tensor, size: int, scale: tuple[float, float],
                             ratio: tuple[float, float] = (3 / 4, 4 / 3), flip_p: float = 0.5
                             ) -> torch.Tensor:
    """Float (B, C, H, W) -> (B, C, size, size), each sample its own crop and flip."""
    b, _, hgt, wid = x.shape
    w, h, cx, cy = crop_boxes(b, hgt, wid, scale, ratio, x.device)
    flip = torch.rand(b, device=x.device) < flip_p
    return resized_crop_flip(x, size, w.to(x.dtype), h.to(x.dtype), cx.to(x.dtype),
                             cy.to(x.dtype), flip)
