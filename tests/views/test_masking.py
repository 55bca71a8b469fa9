import pytest
import torch

from selfsup.views.masking import block_masking, patchify, random_masking, unpatchify


def reference_random_masking(x, mask_ratio, noise):
    """facebookresearch/mae models_mae.py ``MaskedAutoencoderViT.random_masking``, step by
    step, with the noise passed in: returns (x_masked, mask, ids_restore, ids_keep)."""
    n, length, d = x.shape
    len_keep = int(length * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, d))
    mask = torch.ones([n, length])
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return x_masked, mask, ids_restore, ids_keep


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_random_masking_matches_reference(ratio):
    noise = torch.rand(4, 49, generator=torch.Generator().manual_seed(1))
    x = torch.randn(4, 49, 8)
    ids_keep, mask, ids_restore = random_masking(4, 49, ratio, noise=noise)
    ref_x, ref_mask, ref_restore, ref_keep = reference_random_masking(x, ratio, noise)
    assert torch.equal(ids_keep, ref_keep) and torch.equal(ids_restore, ref_restore)
    assert torch.equal(mask, ref_mask) and mask.dtype == torch.float32
    assert torch.equal(torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, 8)), ref_x)


def test_random_masking_counts_and_consistency():
    ids_keep, mask, ids_restore = random_masking(16, 49, 0.75, "cpu")
    keep = int(49 * 0.25)  # 12
    assert ids_keep.shape == (16, keep) and ids_keep.dtype == torch.int64
    assert torch.equal(mask.sum(1), torch.full((16,), 49.0 - keep))
    assert torch.equal(mask.gather(1, ids_keep), torch.zeros(16, keep))  # kept = unmasked
    gen = torch.Generator().manual_seed(0)
    a = random_masking(2, 49, 0.75, generator=gen)[0]
    b = random_masking(2, 49, 0.75, generator=torch.Generator().manual_seed(0))[0]
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        random_masking(2, 4, 0.9)  # int(0.4) = 0 visible
    with pytest.raises(ValueError):
        random_masking(2, 49, 1.0)


@pytest.mark.parametrize("grid,count", [(7, 29), (8, 30), (7, 1), (7, 49), (14, 75)])
def test_block_masking_exact_count(grid, count):
    mask = block_masking(32, grid, count, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (32, grid * grid) and mask.dtype == torch.bool
    assert torch.equal(mask.sum(1), torch.full((32,), count))


def _adjacent_pairs(mask, grid):
    m = mask.view(-1, grid, grid)
    return ((m[:, 1:] & m[:, :-1]).sum((1, 2)) + (m[:, :, 1:] & m[:, :, :-1]).sum((1, 2)))


def test_block_masking_is_blockwise():
    gen = torch.Generator().manual_seed(0)
    blocks = block_masking(256, 8, 24, generator=gen)
    scattered = torch.rand(256, 64, generator=gen).argsort(1) < 24  # 24 masked at random
    # 24 of 64 patches: scattered at random ~14 neighbouring pairs, in rectangles far more
    pairs, scattered_pairs = _adjacent_pairs(blocks, 8), _adjacent_pairs(scattered, 8)
    assert pairs.float().mean() > 1.8 * scattered_pairs.float().mean()
    # a count one rectangle can take is often one full rectangle (never, for scattered
    # patches); rounding the drawn sides often gives a 3-patch block plus one more
    one = block_masking(256, 8, 4, generator=gen, min_block=4).view(256, 8, 8)
    rows, cols = one.any(2).sum(1), one.any(1).sum(1)
    assert (rows * cols == 4).float().mean() > 0.4


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("p", [2, 4])
def test_patchify_roundtrip_and_order(channels, p):
    imgs = torch.randn(2, channels, 8 * p // 2 * 2, 8 * p // 2 * 2)
    x = patchify(imgs, p)
    side = imgs.shape[-1] // p
    assert x.shape == (2, side * side, p * p * channels)
    assert torch.equal(unpatchify(x, p, channels), imgs)
    # MAE's element order: patch (row 1, col 2), pixel (i, j), channel c at (i * p + j) * C + c
    i, j, c = p - 1, 1, channels - 1
    assert x[1, 1 * side + 2, (i * p + j) * channels + c] == imgs[1, c, p + i, 2 * p + j]
