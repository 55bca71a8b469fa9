import numpy as np
import pytest
import torch

from selfsup.views.masking import (
    block_masking,
    hard_patch_masking,
    patch_fraction,
    patchify,
    random_masking,
    unpatchify,
)


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


def reference_generate_mask(loss_pred, mask_ratio, keep_ratio, noise):
    """Haochen-Wang409/HPM models_mae_learn_loss.py ``MaskedAutoencoderViT.generate_mask``, step
    by step with its per-sample loop; its ``np.random.shuffle`` of the other patches is their
    order under ``noise`` instead (and its random branch argsorts ``noise``), so the two
    implementations can share one draw. Returns (ids_keep, mask)."""
    n, length = loss_pred.shape
    len_keep = int(length * (1 - mask_ratio))
    ids_shuffle_loss = torch.argsort(loss_pred, dim=1)
    ids_shuffle = torch.zeros_like(ids_shuffle_loss)
    if int((length - len_keep) * keep_ratio) <= 0:
        ids_shuffle = torch.argsort(noise, dim=1)
    else:
        for i in range(n):
            len_loss = int((length - len_keep) * keep_ratio)
            ids_shuffle[i, -len_loss:] = ids_shuffle_loss[i, -len_loss:]
            temp = torch.arange(length)
            deleted = np.delete(temp.numpy(), ids_shuffle[i, -len_loss:].numpy())
            deleted = deleted[np.argsort(noise[i, deleted].numpy(), kind="stable")]  # "shuffle"
            ids_shuffle[i, :(length - len_loss)] = torch.LongTensor(deleted)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones([n, length])
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return ids_shuffle[:, :len_keep], mask


@pytest.mark.parametrize("ratio,alpha", [(0.75, 0.0), (0.75, 0.01), (0.75, 0.25), (0.75, 0.5),
                                         (0.75, 1.0), (0.5, 0.3), (0.9, 0.5)])
def test_hard_patch_masking_matches_the_official_loop(ratio, alpha):
    g = torch.Generator().manual_seed(3)
    scores, noise = torch.randn(6, 49, generator=g), torch.rand(6, 49, generator=g)
    ids_keep, mask, ids_restore = hard_patch_masking(scores, ratio, alpha, noise=noise)
    ref_keep, ref_mask = reference_generate_mask(scores, ratio, alpha, noise)
    assert torch.equal(ids_keep, ref_keep) and torch.equal(mask, ref_mask)
    assert torch.equal(torch.argsort(ids_restore, 1)[:, :ids_keep.shape[1]], ids_keep)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.5, 1.0])
def test_hard_patch_masking_counts_and_top_share(alpha):
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(32, 64, generator=g)
    ids_keep, mask, _ = hard_patch_masking(scores, 0.75, alpha, generator=g)
    keep, masked = int(64 * 0.25), 64 - int(64 * 0.25)  # 16 kept, 48 masked
    assert ids_keep.shape == (32, keep)
    assert torch.equal(mask.sum(1), torch.full((32,), float(masked)))
    assert torch.equal(mask.gather(1, ids_keep), torch.zeros(32, keep))
    hard = int(masked * alpha)  # 0, 9, 24, 48
    top = scores.topk(hard, dim=1).indices
    assert torch.equal(mask.gather(1, top), torch.ones(32, hard))  # every top patch masked
    if alpha == 0.0:  # no hard patch: the scores play no part
        noise = torch.rand(32, 64, generator=g)
        assert torch.equal(hard_patch_masking(scores, 0.75, 0.0, noise=noise)[1],
                           random_masking(32, 64, 0.75, noise=noise)[1])


def test_hard_patch_masking_draws_the_rest_uniformly():
    # one image's scores, 4000 draws: the 10 hardest patches always masked, each of the other
    # 54 masked with probability (48 - 10) / 54
    scores = torch.arange(64.0).expand(4000, 64)
    mask = hard_patch_masking(scores, 0.75, 10 / 48 + 1e-6,
                              generator=torch.Generator().manual_seed(0))[1]
    rate = mask.mean(0)
    assert torch.equal(rate[54:], torch.ones(10))
    assert (rate[:54] - 38 / 54).abs().max() < 0.04  # 5 standard errors of one rate
    with pytest.raises(ValueError, match="hard_fraction"):
        hard_patch_masking(scores[:2], 0.75, 1.5)


def test_patch_fraction_by_hand_and_against_pooling():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = mask[0, 0, 1] = mask[0, 1, 0] = True  # 3 of patch 0's 4 pixels
    mask[0, 3, 3] = True  # 1 of patch 3's
    assert patch_fraction(mask, 2).tolist() == [[0.75, 0.0, 0.0, 0.25]]
    pixels = torch.rand(3, 12, 12) < 0.4
    pooled = torch.nn.functional.avg_pool2d(pixels[:, None].float(), 4).flatten(1)
    torch.testing.assert_close(patch_fraction(pixels, 4), pooled)
    with pytest.raises(ValueError, match="pixel mask"):
        patch_fraction(torch.zeros(2, 1, 4, 4), 2)
