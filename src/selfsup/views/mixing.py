"""Patch mixing for masked image modelling (Chen et al. 2023, "Mixed Autoencoder for
Self-supervised Visual Representation Learning", sec. 3): a group of r images shares one patch
grid, every position takes its patch from one member of the group, and a member's own positions
are what MAE calls its visible patches.

Each group's positions are shuffled by argsort of uniform noise (MAE's random masking) and cut
into r runs of k = L // r: member m owns run m. The L - r k positions left over when r does not
divide L belong to no member: the encoder never reads them and every member reconstructs them.
Each member thus keeps exactly k patches, MAE's visible share at mask ratio 1 - k / L.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .masking import patchify, unpatchify


class PatchMixing(NamedTuple):
    """One draw of `patch_mixing` for G groups of r images, L positions, k = L // r."""

    ids_mixed: torch.Tensor  # (G, r k) the positions the encoder reads, member 0's run first
    source: torch.Tensor  # (G, L) int64, the member owning each position, -1 for none
    ids_keep: torch.Tensor  # (G r, k) each member's positions, in the encoder's order
    mask: torch.Tensor  # (G r, L) float, 1 = not the member's (reconstructed), MAE's mask
    ids_restore: torch.Tensor  # (G r, L) each member's inverse shuffle, its own run first


def patch_mixing(groups: int, num_patches: int, group_size: int,
                 device: torch.device | str | None = None,
                 generator: torch.Generator | None = None,
                 noise: torch.Tensor | None = None) -> PatchMixing:
    """Draw which member of each group of ``group_size`` images owns each of ``num_patches``
    positions (the module docstring's rule). Image ``g * group_size + m`` is member m of group g.
    ``noise`` (G, L) replaces the uniform draw (tests). A member's ``ids_keep``, ``mask`` and
    ``ids_restore`` are what `random_masking` returns for one image, so MAE's decoder reads
    them unchanged."""
    r, n = group_size, num_patches
    if r < 2:
        raise ValueError(f"a mixing group needs 2 images or more, got group_size {r}")
    k = n // r
    if k < 1:
        raise ValueError(f"{n} patches cannot give each of {r} images one")
    if noise is None:
        noise = torch.rand(groups, n, device=device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)  # (G, L)
    dev = ids_shuffle.device
    rank_owner = torch.arange(n, device=dev) // k  # (L,) the member owning shuffle rank j
    rank_owner = torch.where(rank_owner < r, rank_owner, -1)
    source = torch.empty_like(ids_shuffle).scatter_(1, ids_shuffle,
                                                    rank_owner.expand_as(ids_shuffle))
    # member m reads the shuffle from rank m k on, wrapping round: its own run comes first
    rolled = (torch.arange(n, device=dev)[None] + k * torch.arange(r, device=dev)[:, None]) % n
    member_shuffle = ids_shuffle[:, rolled].flatten(0, 1)  # (G r, L)
    ids_restore = torch.argsort(member_shuffle, dim=1)
    return PatchMixing(ids_shuffle[:, :r * k], source, member_shuffle[:, :k],
                       (ids_restore >= k).float(), ids_restore)


def mix_images(x: torch.Tensor, source: torch.Tensor, p: int) -> torch.Tensor:
    """Images (G r, C, S, S), groups of r consecutive members, and ``source`` (G, L) ->
    the mixed images (G, C, S, S): each p x p patch from the member owning it, zeros where no
    member does."""
    g, n = source.shape
    if g == 0 or x.shape[0] % g:
        raise ValueError(f"{x.shape[0]} images do not split into {g} groups")
    patches = patchify(x, p)  # (G r, L, D)
    if patches.shape[1] != n:
        raise ValueError(f"source names {n} positions, the images have {patches.shape[1]}")
    d = patches.shape[-1]
    patches = patches.view(g, x.shape[0] // g, n, d)
    owner = source.clamp_min(0)[:, None, :, None].expand(g, 1, n, d)
    mixed = patches.gather(1, owner).squeeze(1) * (source >= 0)[..., None]  # (G, L, D)
    return unpatchify(mixed, p, x.shape[1])


def homologous_attention_mask(segments: torch.Tensor) -> torch.Tensor:
    """MixedAE's homologous attention as a mask: ``segments`` (B, n), the source of each
    encoded patch -> bool (B, 1 + n, 1 + n), True where query i may attend to key j: patches
    of one source see each other; the class token (index 0) sees and is seen by every token."""
    b, n = segments.shape
    allowed = torch.ones(b, 1 + n, 1 + n, dtype=torch.bool, device=segments.device)
    allowed[:, 1:, 1:] = segments[:, :, None] == segments[:, None, :]
    return allowed
