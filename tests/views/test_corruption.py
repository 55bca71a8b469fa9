import pytest
import torch

from selfsup.views.corruption import CORRUPTIONS, gmml_corrupt, gmml_views


def reference_gmml(x, ratio, kind, align, max_block, seed):
    """Sara-Ahmed/SiT datasets_utils ``GMML_drop_rand_patches``, image by image with its
    slicing (``X[:, r:r+h, c:c+w] = ...``), reading the random numbers in the order
    `gmml_corrupt` draws them, with its two stated changes (block sides up to and including
    int(max_block * cells), blocks starting in any cell)."""
    g = torch.Generator().manual_seed(seed)
    b, c, s, _ = x.shape
    cells = s // align
    largest = max(1, int(max_block * cells))
    low = min(0.5, ratio)
    target = (low + (ratio - low) * torch.rand(b, generator=g)) * s * s
    out, mask = x.clone(), torch.zeros(b, s, s)
    for _ in range(s * s):
        active = [float(mask[i].sum()) < float(target[i]) for i in range(b)]
        if not any(active):
            break
        top, left = torch.randint(0, cells, (b,), generator=g), torch.randint(0, cells, (b,),
                                                                              generator=g)
        h, w = torch.randint(0, largest, (b,), generator=g), torch.randint(0, largest, (b,),
                                                                         generator=g)
        if kind == "shuffle":
            u_top, u_left = torch.rand(b, generator=g), torch.rand(b, generator=g)
        for i in range(b):
            r, cc = int(top[i]) * align, int(left[i]) * align
            hh = min((int(h[i]) + 1) * align, s - r)
            ww = min((int(w[i]) + 1) * align, s - cc)
            if not active[i]:
                continue
            if kind == "zeros":
                out[i][:, r:r + hh, cc:cc + ww] = 0
            else:
                r2 = int(float(u_top[i]) * ((s - hh) // align + 1)) * align
                c2 = int(float(u_left[i]) * ((s - ww) // align + 1)) * align
                out[i][:, r:r + hh, cc:cc + ww] = out[i][:, r2:r2 + hh, c2:c2 + ww].clone()
            mask[i][r:r + hh, cc:cc + ww] = 1
    return out, mask.bool()


@pytest.mark.parametrize("kind", ["zeros", "shuffle"])
@pytest.mark.parametrize("size, align, ratio", [(8, 1, 0.5), (12, 2, 0.7), (28, 4, 0.3)])
def test_matches_the_official_block_loop(kind, size, align, ratio):
    x = torch.randn(5, 2, size, size, generator=torch.Generator().manual_seed(1))
    out, mask = gmml_corrupt(x, ratio, kind, align, generator=torch.Generator().manual_seed(7))
    ref_out, ref_mask = reference_gmml(x, ratio, kind, align, 0.3, seed=7)
    assert torch.equal(mask, ref_mask)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_coverage_and_what_fills_the_blocks(kind):
    g = torch.Generator().manual_seed(0)
    b, s = 16, 16
    x = torch.arange(b, dtype=torch.float32)[:, None, None, None] * 1000 + torch.arange(
        s * s, dtype=torch.float32).view(1, 1, s, s)  # every image its own range of values
    out, mask = gmml_corrupt(x, 0.7, kind, align=2, generator=g)
    covered = mask.flatten(1).sum(1).float() / (s * s)
    largest_block = (int(0.3 * s / 2) * 2) ** 2 / (s * s)
    assert bool((covered >= 0.5).all()) and bool((covered < 0.7 + largest_block).all())
    assert torch.equal(torch.where(mask[:, None], x, out), x)  # untouched outside the blocks
    cells = mask.view(b, s // 2, 2, s // 2, 2)  # align=2: whole 2x2 cells
    assert torch.equal(cells.amin((2, 4)), cells.amax((2, 4)))
    got = out.masked_select(mask[:, None]).view(-1)
    owner = torch.arange(b)[:, None, None, None].expand_as(out).masked_select(mask[:, None])
    if kind == "zeros":
        assert bool((got == 0).all())
    elif kind == "shuffle":  # blocks of the image itself
        assert bool(((got // 1000) == owner).all())
    elif kind == "replace":  # the same pixels of one other image of the batch
        for i in range(b):
            pos = torch.arange(s * s).view(1, s, s).float()
            vals = out[i][mask[i][None]]
            assert bool((vals % 1000 == pos[mask[i][None]]).all())
            assert len(set((vals // 1000).tolist())) == 1
    else:
        assert abs(float(got.mean())) < 0.1 and abs(float(got.std()) - 1) < 0.1


def test_views_pick_the_alien_blocks_with_probability_p():
    x = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    out, mask = gmml_views(x, 0.5, "noise", replace_p=1.0, generator=torch.Generator()
                           .manual_seed(3))
    g = torch.Generator().manual_seed(3)
    gmml_corrupt(x, 0.5, "noise", generator=g)  # drawn first, then discarded
    alien, alien_mask = gmml_corrupt(x, 0.3, "replace", generator=g)
    assert torch.equal(out, alien) and torch.equal(mask, alien_mask)
    plain = gmml_views(x, 0.5, "zeros", replace_ratio=0, generator=torch.Generator()
                       .manual_seed(4))
    direct = gmml_corrupt(x, 0.5, "zeros", generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(plain, direct, strict=True))
    _, mixed = gmml_views(x, 0.5, "zeros", replace_ratio=0.3, replace_p=0.5,
                          generator=torch.Generator().manual_seed(5))
    share = mixed.flatten(1).float().mean(1)  # 0.3 for alien images, 0.5 or more for the rest
    assert bool((share < 0.45).any()) and bool((share >= 0.5).any())


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "blur"}, "unknown corruption"),
    ({"ratio": 1.0}, "ratio"),
    ({"ratio": 0.0}, "ratio"),
    ({"align": 3}, "align"),
    ({"max_block": 0.0}, "max_block"),
])
def test_rejects_bad_settings(kwargs, match):
    args = {"ratio": 0.5} | kwargs
    with pytest.raises(ValueError, match=match):
        gmml_corrupt(torch.zeros(2, 1, 8, 8), **args)
    with pytest.raises(ValueError, match="float views"):
        gmml_corrupt(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(ValueError, match="replace_p"):
        gmml_views(torch.zeros(2, 1, 8, 8), replace_p=1.5)
