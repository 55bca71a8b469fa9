"""Patch masks for masked image modelling, as functions a method calls (some masks depend on
the model), and the patch <-> image reshapes their losses need.

Patches are numbered row-major over the grid: patch k sits at row k // W, column k % W.
"""

from __future__ import annotations

import math

import torch


def random_masking(batch: int, num_patches: int, mask_ratio: float,
                   device: torch.device | str | None = None,
                   generator: torch.Generator | None = None,
                   noise: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-sample uniform random masking (He et al. 2021, sec. 3, "Masking"): shuffle the
    patches by argsort of uniform noise and keep the first ``int(L * (1 - mask_ratio))``.

    Returns ``ids_keep`` (B, n_keep) int64, the kept patch ids in shuffled order (what the
    encoder gathers); ``mask`` (B, L) float, 1 = masked, in original patch order; and
    ``ids_restore`` (B, L) int64, the inverse shuffle (what the decoder gathers with).
    ``noise`` (B, L) replaces the random draw (tests, or a model-dependent score).
    """
    if not 0 <= mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    keep = int(num_patches * (1 - mask_ratio))
    if keep < 1:
        raise ValueError(f"mask_ratio {mask_ratio} leaves no visible patch of {num_patches}")
    if noise is None:
        noise = torch.rand(batch, num_patches, device=device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)  # (B, L), ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # (B, L)
    ids_keep = ids_shuffle[:, :keep]  # (B, n_keep)
    # patch i sits at position ids_restore[i] of the shuffle; masked when past the kept prefix
    # (the same as MAE's ones / zero the prefix / gather with ids_restore)
    mask = (ids_restore >= keep).float()
    return ids_keep, mask, ids_restore


def block_masking(batch: int, grid_size: int | tuple[int, int], num_masked: int,
                  device: torch.device | str | None = None,
                  generator: torch.Generator | None = None, min_block: int = 2,
                  min_aspect: float = 0.3, max_rounds: int | None = None) -> torch.Tensor:
    """BEiT's block-wise masking (Bao et al. 2021, "BEiT: BERT Pre-Training of Image
    Transformers", Algorithm 1), batched: (B, L) bool, True = masked, exactly ``num_masked``
    per sample.

    Each round every sample draws one rectangle of area ``s ~ U(min_block, remaining)`` and
    aspect ratio ``r`` log-uniform in [min_aspect, 1 / min_aspect] (height round(sqrt(s r)),
    width round(sqrt(s / r)), smaller than the grid), at a uniform position; a sample takes its
    rectangle when it adds between 1 and ``remaining`` new patches, as BEiT's loop does.
    BEiT's smallest block is 16 patches on a 14x14 grid; on the 7x7-8x8 grids of small images
    that is a third of the image, so ``min_block`` defaults to 2.

    After ``max_rounds`` rounds (default: enough for every block at its smallest, plus slack)
    a sample still short of ``num_masked`` is topped up with random unmasked patches; the rule
    never overshoots, but a mask over the count would be trimmed at random the same way.
    """
    gh, gw = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    if not 0 <= num_masked <= gh * gw:
        raise ValueError(f"num_masked must be in [0, {gh * gw}], got {num_masked}")
    if max_rounds is None:
        max_rounds = 4 * math.ceil(num_masked / max(min_block, 1)) + 10
    rows = torch.arange(gh, device=device)[None, :, None]  # (1, H, 1)
    cols = torch.arange(gw, device=device)[None, None, :]  # (1, 1, W)
    mask = torch.zeros(batch, gh, gw, dtype=torch.bool, device=device)  # (B, H, W)
    remaining = torch.full((batch,), num_masked, device=device)  # (B,)
    log_aspect = (math.log(min_aspect), -math.log(min_aspect))

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(batch, device=device, generator=generator)

    for _ in range(max_rounds):
        if not bool((remaining > 0).any()):
            break
        area = uniform(float(min_block), remaining.float())  # (B,)
        aspect = uniform(*log_aspect).exp()
        h = (area * aspect).sqrt().round().long().clamp_min(1)  # (B,)
        w = (area / aspect).sqrt().round().long().clamp_min(1)
        fits = (h < gh) & (w < gw)
        top = (uniform(0.0, 1.0) * (gh - h + 1).clamp_min(1)).long()  # (B,)
        left = (uniform(0.0, 1.0) * (gw - w + 1).clamp_min(1)).long()
        block = ((rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])
                 & (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None]))
        new = (block & ~mask).sum(dim=(1, 2))  # (B,)
        take = fits & (new > 0) & (new <= remaining)
        mask |= block & take[:, None, None]
        remaining = remaining - new * take
    mask = mask.flatten(1)  # (B, L)
    # exact count: masked patches score in [1, 2), unmasked in [0, 1); the top num_masked are
    # every masked patch plus random unmasked ones (top-up), or a random subset of them (trim)
    score = mask.float() + torch.rand(mask.shape, device=device, generator=generator)
    exact = torch.zeros_like(mask)
    exact.scatter_(1, score.topk(num_masked, dim=1).indices, True)
    return exact


def hard_patch_masking(scores: torch.Tensor, mask_ratio: float, hard_fraction: float,
                       generator: torch.Generator | None = None,
                       noise: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HPM's easy-to-hard masking (Wang et al. 2023, "Hard Patches Mining for Masked Image
    Modeling", sec. 3, "easy-to-hard mask generation"), batched. Of each sample's
    ``num_masked = L - int(L * (1 - mask_ratio))`` masked patches,
    ``int(num_masked * hard_fraction)`` are those with the highest ``scores`` (B, L) (predicted
    reconstruction losses); the rest of the mask is drawn uniformly from the other patches.
    Returns ``ids_keep``, ``mask``, ``ids_restore`` as `random_masking` does.

    The official ``generate_mask`` loops over samples: the top-scored patches go to the end of
    the shuffle and a random permutation of the others before them. Here the others are ordered
    by uniform ``noise`` (B, L) and the top-scored ones are lifted above every draw, so one
    argsort masks the whole batch.
    """
    if not 0.0 <= hard_fraction <= 1.0:
        raise ValueError(f"hard_fraction must be in [0, 1], got {hard_fraction}")
    b, n = scores.shape
    if noise is None:
        noise = torch.rand(b, n, device=scores.device, generator=generator)
    if 0 <= mask_ratio < 1:  # random_masking rejects any other ratio
        hard = int((n - int(n * (1 - mask_ratio))) * hard_fraction)
        if hard > 0:
            noise = noise.scatter(1, scores.topk(hard, dim=1).indices, 2.0)  # past U[0, 1)
    return random_masking(b, n, mask_ratio, noise=noise)


def patch_fraction(pixel_mask: torch.Tensor, p: int) -> torch.Tensor:
    """A pixel mask (B, H, W), bool or float -> the masked fraction of every p x p patch (B, L)
    float, row-major: the patch-level weight of a mask drawn on pixels (SiT's group masking),
    1 or 0 on blocks aligned to patches."""
    if pixel_mask.ndim != 3:
        raise ValueError(f"expected a pixel mask (B, H, W), got {tuple(pixel_mask.shape)}")
    return patchify(pixel_mask[:, None].float(), p).mean(dim=-1)  # (B, L)


def patchify(imgs: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p*p*C), patches row-major, each flattened (row, col, channel)
    as MAE's ``patchify`` (einsum nchpwq -> nhwpqc), for any channel count."""
    b, c, hh, ww = imgs.shape
    if hh % p or ww % p:
        raise ValueError(f"image size {hh}x{ww} is not a multiple of the patch size {p}")
    h, w = hh // p, ww // p
    x = imgs.reshape(b, c, h, p, w, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(b, h * w, p * p * c)


def unpatchify(x: torch.Tensor, p: int, channels: int) -> torch.Tensor:
    """Inverse of `patchify` for a square grid: (B, L, p*p*C) -> (B, C, H, W)."""
    b, n, d = x.shape
    h = math.isqrt(n)
    if h * h != n or d != p * p * channels:
        raise ValueError(f"cannot unpatchify {n} patches of {d} values into a square image of "
                         f"{channels} channels at patch size {p}")
    x = x.reshape(b, h, h, p, p, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(b, channels, h * p, h * p)
