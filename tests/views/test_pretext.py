"""Rotation and jigsaw pretext inputs against per-sample loops; the jigsaw permutation set."""

from __future__ import annotations

import itertools

import pytest
import torch

from selfsup.views.pretext import (
    jigsaw_tiles,
    maximal_hamming_permutations,
    rotate_quarter_turns,
)


def test_quarter_turns_match_rot90_per_sample():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, 5, 5, generator=gen)
    turns = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 3, 0])
    out = rotate_quarter_turns(x, turns)
    for b in range(12):
        assert torch.equal(out[b], torch.rot90(x[b], int(turns[b]), dims=(-2, -1)))
    assert torch.equal(x, torch.randn(12, 3, 5, 5, generator=torch.Generator().manual_seed(0)))


def test_quarter_turn_is_counter_clockwise():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]
    # counter-clockwise: the top-right corner comes to the top-left
    assert rotate_quarter_turns(x, torch.tensor([1]))[0, 0].tolist() == [[2.0, 4.0], [1.0, 3.0]]


def test_quarter_turns_need_square_images():
    with pytest.raises(ValueError, match="square"):
        rotate_quarter_turns(torch.zeros(2, 1, 4, 5), torch.tensor([1, 2]))


def jigsaw_reference(x: torch.Tensor, permutations: torch.Tensor, labels: torch.Tensor,
                     grid: int = 3) -> torch.Tensor:
    """Tile by tile: position t of sample b holds tile permutations[labels[b], t], tiles
    numbered row-major on the centred grid x (S // grid) square; no resizing."""
    b, c, h, w = x.shape
    t = min(h, w) // grid
    top, left = (h - grid * t) // 2, (w - grid * t) // 2
    out = torch.empty(b, grid * grid, c, t, t)
    for i in range(b):
        for position in range(grid * grid):
            tile = int(permutations[labels[i], position])
            r, col = divmod(tile, grid)
            y0, x0 = top + r * t, left + col * t
            out[i, position] = x[i, :, y0:y0 + t, x0:x0 + t]
    return out


@pytest.mark.parametrize("side", [9, 11, 28])
def test_jigsaw_layout_matches_the_loop(side):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, side, side, generator=gen)
    perms = maximal_hamming_permutations(6)
    labels = torch.tensor([0, 5, 2, 2, 3])
    t = side // 3
    got = jigsaw_tiles(x, perms, labels, size=t)  # size = tile side: no resizing
    assert torch.equal(got, jigsaw_reference(x, perms, labels))


def test_jigsaw_identity_permutation_keeps_the_image():
    x = torch.randn(2, 1, 6, 6)
    identity = torch.arange(9)[None]
    tiles = jigsaw_tiles(x, identity, torch.zeros(2, dtype=torch.long), size=2)  # (2, 9, 1, 2, 2)
    rebuilt = tiles.reshape(2, 3, 3, 1, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(2, 1, 6, 6)
    assert torch.equal(rebuilt, x)


def test_jigsaw_resizes_tiles_to_the_view_side():
    x = torch.randn(3, 1, 12, 12)
    tiles = jigsaw_tiles(x, maximal_hamming_permutations(4), torch.tensor([0, 1, 3]))
    assert tiles.shape == (3, 9, 1, 12, 12)
    # a constant tile stays constant after bilinear resizing
    flat = jigsaw_tiles(torch.full((1, 1, 12, 12), 0.7), maximal_hamming_permutations(4),
                        torch.tensor([2]))
    torch.testing.assert_close(flat, torch.full_like(flat, 0.7))


def test_jigsaw_needs_room_for_the_grid():
    with pytest.raises(ValueError, match="at least 3 px"):
        jigsaw_tiles(torch.zeros(1, 1, 2, 2), torch.arange(9)[None], torch.zeros(1).long())


def test_maximal_hamming_set_is_distinct_and_far_apart():
    perms = maximal_hamming_permutations(30)
    assert perms.shape == (30, 9) and perms.dtype == torch.int64
    assert all(sorted(p.tolist()) == list(range(9)) for p in perms)  # each a permutation
    distance = (perms[:, None, :] != perms[None, :, :]).sum(-1)  # (30, 30)
    off_diagonal = distance[~torch.eye(30, dtype=torch.bool)]
    assert off_diagonal.min() >= 7  # what the ScatSimCLR docstring promises for 30 of them


def test_maximal_hamming_beats_a_random_set():
    # greedy farthest-point selection: its minimum distance is at least a random set's
    gen = torch.Generator().manual_seed(2)
    random_set = torch.stack([torch.randperm(9, generator=gen) for _ in range(30)])
    distance = (random_set[:, None, :] != random_set[None, :, :]).sum(-1)
    random_min = distance[~torch.eye(30, dtype=torch.bool)].min()
    perms = maximal_hamming_permutations(30)
    greedy = (perms[:, None, :] != perms[None, :, :]).sum(-1)
    assert greedy[~torch.eye(30, dtype=torch.bool)].min() > random_min


def test_maximal_hamming_small_case_by_brute_force():
    # 3 tiles: 6 permutations; any two distinct ones differ in 2 or 3 places. Greedy picks
    # three pairwise at distance 3 (the cyclic shifts of the start) when it can.
    perms = maximal_hamming_permutations(3, tiles=3, seed=0)
    d = (perms[:, None, :] != perms[None, :, :]).sum(-1)
    assert d[~torch.eye(3, dtype=torch.bool)].min() == 3
    assert set(map(tuple, maximal_hamming_permutations(6, tiles=3).tolist())) == set(
        itertools.permutations(range(3)))


def test_maximal_hamming_is_deterministic_per_seed():
    a = maximal_hamming_permutations(10, seed=3)
    assert torch.equal(a, maximal_hamming_permutations(10, seed=3))
    assert not torch.equal(a, maximal_hamming_permutations(10, seed=4))
    a[0, 0] = 99  # the caller's copy is its own: the cached set is unchanged
    assert maximal_hamming_permutations(10, seed=3)[0, 0] != 99


@pytest.mark.parametrize("count", [0, 7])
def test_maximal_hamming_count_out_of_range(count):
    with pytest.raises(ValueError, match="count"):
        maximal_hamming_permutations(count, tiles=3)
