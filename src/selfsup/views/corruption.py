"""Group masked model learning's corruptions (Atito et al. 2021, "SiT: Self-supervised vIsion
Transformer", "group masked model learning"; the official Sara-Ahmed/SiT
``datasets_utils.GMML_drop_rand_patches`` and ``GMML_replace_list``), batched on tensors.

Random rectangles of a view are corrupted until they cover a drawn fraction of the image: set to
zeros, to Gaussian noise, to another block of the same image, or to the same block of another
image of the batch (an "alien concept"). The reconstruction loss reads the returned pixel mask.
"""

from __future__ import annotations

import torch

CORRUPTIONS = ("zeros", "noise", "shuffle", "replace")


def gmml_corrupt(x: torch.Tensor, ratio: float, kind: str = "zeros", align: int = 1,
                 max_block: float = 0.3, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized views (B, C, S, S) -> corrupted views (B, C, S, S) and the corrupted-pixel mask
    (B, S, S) bool, as the official ``GMML_drop_rand_patches`` on each image:

    - each image draws a target coverage ``U(min(0.5, ratio), ratio)`` of its pixels;
    - every round, each image still under its target draws one block on a grid of
      ``align`` x ``align`` cells: a top-left cell and a height and width of 1 ..
      ``max(1, int(max_block * S / align))`` cells each (cut at the border), and corrupts it:
      ``zeros``; ``noise`` N(0, 1) (one draw per pixel up front, not one per block: a
      pixel ends N(0, 1) either way); ``shuffle``, a same-sized block of the same image at another
      cell (read from the image as corrupted so far, as the official in-place copy does);
      ``replace``, the same block of a random image of the batch (possibly itself, as
      officially), drawn once per image;
    - rounds go on until every image reaches its target.

    The official block side is ``randint(align, int(max_block * S))``, which excludes its bound;
    on an 8 px image that leaves only 1-pixel blocks, or fails when aligned to 2 px patches, so
    here the bound is included. Blocks also start in any cell (the official ``randint`` never
    starts one in the last row or column). Zeros are zeros of the normalized view (the dataset
    mean), as in the official code, which corrupts after ``Normalize``.
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; valid: {', '.join(CORRUPTIONS)}")
    if x.ndim != 4 or x.shape[-1] != x.shape[-2] or not x.is_floating_point():
        raise ValueError(f"expected float views (B, C, S, S), got {x.dtype} {tuple(x.shape)}")
    if not 0 < ratio < 1:
        raise ValueError(f"corruption ratio must be in (0, 1), got {ratio}")
    b, c, s, _ = x.shape
    if align < 1 or s % align:
        raise ValueError(f"align {align} must divide the view side {s}")
    if not 0 < max_block <= 1:
        raise ValueError(f"max_block must be in (0, 1], got {max_block}")
    dev, g, cells = x.device, generator, s // align
    largest = max(1, int(max_block * cells))
    low = min(0.5, ratio)
    target = (low + (ratio - low) * torch.rand(b, device=dev, generator=g)) * s * s  # (B,) px
    pix = torch.arange(s, device=dev)  # (S,)
    idx = torch.arange(b, device=dev)
    out, mask = x.clone(), torch.zeros(b, s, s, dtype=torch.bool, device=dev)
    fill = torch.zeros_like(x)  # zeros; replace: the donors; noise: one draw, read once a pixel
    if kind == "replace":
        fill = x[torch.randint(0, b, (b,), device=dev, generator=g)]
    elif kind == "noise":
        fill = torch.randn(x.shape, device=dev, generator=g, dtype=x.dtype)

    def cell(n: int) -> torch.Tensor:  # (B,) uniform ints in [0, n)
        return torch.randint(0, n, (b,), device=dev, generator=g)

    for _ in range(s * s):  # a cap far above need: ~30 rounds cover half of an 8 px image
        active = mask.sum((1, 2)) < target  # (B,)
        if not bool(active.any()):
            break
        top, left = cell(cells) * align, cell(cells) * align  # (B,) pixels
        h = (cell(largest) + 1) * align  # (B,) pixels, cut at the border below
        w = (cell(largest) + 1) * align
        rows = (pix >= top[:, None]) & (pix < (top + h)[:, None])  # (B, S)
        cols = (pix >= left[:, None]) & (pix < (left + w)[:, None])
        block = rows[:, :, None] & cols[:, None, :] & active[:, None, None]  # (B, S, S)
        if kind == "shuffle":  # the block's pixels read (r - top + top2, c - left + left2)
            h_ = torch.minimum(h, s - top)  # (B,) the block as cut at the border
            w_ = torch.minimum(w, s - left)
            top2 = (torch.rand(b, device=dev, generator=g) * ((s - h_) // align + 1)).long()
            left2 = (torch.rand(b, device=dev, generator=g) * ((s - w_) // align + 1)).long()
            src_r = (pix - top[:, None] + top2[:, None] * align).clamp(0, s - 1)  # (B, S)
            src_c = (pix - left[:, None] + left2[:, None] * align).clamp(0, s - 1)
            fill = out[idx[:, None, None], :, src_r[:, :, None], src_c[:, None, :]]  # (B,S,S,C)
            fill = fill.permute(0, 3, 1, 2)
        out = torch.where(block[:, None], fill, out)
        mask |= block
    return out, mask


def gmml_views(x: torch.Tensor, ratio: float = 0.5, kind: str = "zeros",
               replace_ratio: float = 0.3, replace_p: float = 0.5, align: int = 1,
               max_block: float = 0.3, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """SiT's corrupted views (B, C, S, S) and pixel masks (B, S, S) bool: each image corrupted
    by `gmml_corrupt` with ``kind`` at ``ratio``, except that with probability ``replace_p`` it
    is instead corrupted by blocks of another image at ``replace_ratio`` (the official
    ``collate_batch``: ``drop_replace`` 0.3, and probability 1/2 from ``GMML_replace_list``'s
    default ``drop_type``). ``replace_ratio=0`` turns the alien blocks off."""
    if not 0 <= replace_p <= 1:
        raise ValueError(f"replace_p must be in [0, 1], got {replace_p}")
    out, mask = gmml_corrupt(x, ratio, kind, align, max_block, generator)
    if replace_ratio == 0 or replace_p == 0:
        return out, mask
    alien, alien_mask = gmml_corrupt(x, replace_ratio, "replace", align, max_block, generator)
    pick = torch.rand(x.shape[0], device=x.device, generator=generator) < replace_p  # (B,)
    return (torch.where(pick[:, None, None, None], alien, out),
            torch.where(pick[:, None, None], alien_mask, mask))
