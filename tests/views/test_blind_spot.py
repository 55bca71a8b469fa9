"""Noise2Void's blind spots (views/blind_spot.py) against the official code's logic written as
loops: the stratified grid, the shifted window, the replacement."""

import math

import pytest
import torch

from selfsup.views.blind_spot import (
    blind_spot,
    box_side,
    neighbour_coords,
    stratified_mask,
)


def test_box_side_by_hand():
    # a 64 x 64 patch at 0.198%: 8.11 pixels, boxes of round(sqrt(4096 / 8.11)) = 22
    assert box_side(64, 64, 0.00198) == 22
    assert box_side(8, 8, 0.00198) == 8  # fewer than one pixel: one box over the patch
    assert box_side(10, 10, 0.25) == 2


def reference_mask(batch, height, width, fraction, seed):
    """The official get_stratified_coords as loops, reading the same offsets."""
    side = box_side(height, width, fraction)
    rows, cols = math.ceil(height / side), math.ceil(width / side)
    offset = torch.randint(0, side, (batch, rows, cols, 2),
                           generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(batch, height, width, dtype=torch.bool)
    for b in range(batch):
        for r in range(rows):
            for c in range(cols):
                i, j = r * side + int(offset[b, r, c, 0]), c * side + int(offset[b, r, c, 1])
                if i < height and j < width:
                    mask[b, i, j] = True
    return mask


@pytest.mark.parametrize("shape, fraction", [((64, 64), 0.00198), ((30, 17), 0.05),
                                             ((8, 8), 0.00198)])
def test_stratified_mask_matches_the_loop(shape, fraction):
    mask = stratified_mask(3, *shape, fraction, torch.Generator().manual_seed(0))
    assert torch.equal(mask, reference_mask(3, *shape, fraction, seed=0))
    side = box_side(*shape, fraction)
    # at most one pixel per box
    for b in range(3):
        for i0 in range(0, shape[0], side):
            for j0 in range(0, shape[1], side):
                assert mask[b, i0:i0 + side, j0:j0 + side].sum() <= 1


def reference_window(coord, size, radius):
    """The official get_subpatch's start along one side."""
    start = max(0, coord - radius)
    end = start + 2 * radius + 1
    return start + min(0, size - end)


@pytest.mark.parametrize("height, width", [(30, 30), (12, 9)])
def test_neighbours_lie_in_the_shifted_window(height, width):
    radius = 5
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    i, j = i.flatten(), j.flatten()
    for di in range(2 * radius + 1):
        for dj in (0, 3, 2 * radius):
            ni, nj = neighbour_coords(i, j, height, width, radius, torch.full_like(i, di),
                                      torch.full_like(j, dj))
            for k in range(len(i)):
                si = max(0, reference_window(int(i[k]), height, radius))
                sj = max(0, reference_window(int(j[k]), width, radius))
                span_i, span_j = min(2 * radius + 1, height), min(2 * radius + 1, width)
                assert (int(ni[k]), int(nj[k])) == (si + di % span_i, sj + dj % span_j)
            assert ni.min() >= 0 and ni.max() < height and nj.min() >= 0 and nj.max() < width


def test_blind_spots_take_every_channel_from_one_neighbour():
    images = torch.rand(4, 3, 40, 40)
    out, mask = blind_spot(images, fraction=0.01, radius=5,
                           generator=torch.Generator().manual_seed(2))
    assert mask.shape == (4, 40, 40) and mask.dtype == torch.bool and mask.sum() >= 4 * 9
    keep = ~mask.unsqueeze(1).expand_as(images)
    assert torch.equal(out[keep], images[keep])  # nothing else changes
    for b, i, j in mask.nonzero().tolist():
        window = images[b, :, max(0, min(i - 5, 29)):max(0, min(i - 5, 29)) + 11,
                        max(0, min(j - 5, 29)):max(0, min(j - 5, 29)) + 11]
        same = (window == out[b, :, i, j].view(3, 1, 1)).all(dim=0)  # all channels at once
        assert same.any(), (b, i, j)
