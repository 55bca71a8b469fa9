"""Pretext-task inputs made from a batch of views: quarter-turn rotations (Gidaris et al. 2018,
"Unsupervised Representation Learning by Predicting Image Rotations") and 3 x 3 jigsaw puzzles
(Noroozi and Favaro 2016, "Unsupervised Learning of Visual Representations by Solving Jigsaw
Puzzles"), batched on tensors: one call per batch, never a loop over images.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import torch
import torch.nn.functional as F


def rotate_quarter_turns(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) and turns (B,) in {0, 1, 2, 3} -> each sample turned by 90 degrees x turns,
    counter-clockwise (``torch.rot90``). Four masked calls, one per rotation class."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"quarter turns need square images, got {tuple(x.shape[-2:])}")
    out = x.clone()
    for k in range(1, 4):
        chosen = turns == k
        if bool(chosen.any()):
            out[chosen] = torch.rot90(x[chosen], k, dims=(-2, -1))
    return out


@functools.lru_cache(maxsize=2)
def _every_permutation(tiles: int) -> np.ndarray:
    flat = itertools.chain.from_iterable(itertools.permutations(range(tiles)))
    return np.fromiter(flat, dtype=np.int8).reshape(-1, tiles)  # (tiles!, tiles), lexicographic


def _hamming_to(columns: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Hamming distance of every permutation, given as (tiles, N) columns, to ``perm``: (N,).
    Column by column, as a row-wise ``(every != perm).sum(1)`` is ~20x slower on 9! rows."""
    out = np.zeros(columns.shape[1], dtype=np.int8)
    for position, tile in enumerate(perm):
        out += columns[position] != tile
    return out


@functools.lru_cache(maxsize=8)
def _maximal_hamming(count: int, tiles: int, seed: int) -> np.ndarray:
    every = _every_permutation(tiles)  # (tiles!, tiles)
    columns = np.ascontiguousarray(every.T)  # (tiles, tiles!)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(every)))]
    # distance of every candidate to its nearest chosen permutation
    nearest = _hamming_to(columns, every[chosen[0]])
    for _ in range(count - 1):
        best = np.flatnonzero(nearest == nearest.max())
        pick = int(best[rng.integers(len(best))])  # ties broken at random, reproducibly
        chosen.append(pick)
        nearest = np.minimum(nearest, _hamming_to(columns, every[pick]))
    return every[chosen].astype(np.int64)


def maximal_hamming_permutations(count: int, tiles: int = 9, seed: int = 0) -> torch.Tensor:
    """A jigsaw permutation set: ``count`` permutations of ``tiles`` positions, (count, tiles).

    Noroozi and Favaro (2016, sec. 3.3) choose permutations far apart in Hamming distance so
    that the puzzle classes are easy to tell apart; their file is not published with ScatSimCLR,
    so the set is generated: greedy farthest-point selection from all tiles! permutations, each
    new one maximizing its minimum Hamming distance to those already chosen (ties at random),
    starting from a random one. Deterministic for a seed.
    """
    if not 1 <= count <= np.prod(range(1, tiles + 1)):
        raise ValueError(f"count must be between 1 and {tiles}!, got {count}")
    return torch.from_numpy(_maximal_hamming(count, tiles, seed).copy())


def jigsaw_tiles(x: torch.Tensor, permutations: torch.Tensor, labels: torch.Tensor,
                 size: int | None = None, grid: int = 3) -> torch.Tensor:
    """Shuffled tiles of each view: (B, C, S, S) -> (B, grid^2, C, size, size).

    The view is cut into a grid x grid array of tiles of side S // grid (the remainder of the
    side is dropped, centred), and position t of sample b holds tile
    ``permutations[labels[b], t]`` (row-major), as ScatSimCLR's official ``JigsawDataset`` lays
    them out; tiles are resized (bilinear) to ``size`` (default S), since the encoder sees each
    tile as an image of its own.
    """
    b, c, h, w = x.shape
    t = min(h, w) // grid
    if t < 1:
        raise ValueError(f"a {grid} x {grid} jigsaw needs images of at least {grid} px, got "
                         f"{h} x {w}")
    top, left = (h - grid * t) // 2, (w - grid * t) // 2
    x = x[..., top:top + grid * t, left:left + grid * t]
    tiles = x.reshape(b, c, grid, t, grid, t).permute(0, 2, 4, 1, 3, 5)  # (B, g, g, C, t, t)
    tiles = tiles.reshape(b, grid * grid, c, t, t)
    order = permutations.to(x.device)[labels]  # (B, g^2)
    tiles = tiles[torch.arange(b, device=x.device)[:, None], order]  # (B, g^2, C, t, t)
    size = size or h
    if size != t:
        tiles = F.interpolate(tiles.reshape(-1, c, t, t), size=(size, size), mode="bilinear",
                              align_corners=False).reshape(b, grid * grid, c, size, size)
    return tiles
