import pytest
import torch

from selfsup.views.masking import patchify
from selfsup.views.mixing import homologous_attention_mask, mix_images, patch_mixing


def reference_mixing(noise, r):
    """The rule in words, one group and one member at a time: shuffle by argsort of the noise,
    member m owns shuffle ranks m k .. m k + k - 1, the rest nobody; a member's shuffle is its
    own run, then every other position in shuffle order from the run after its own, wrapping."""
    groups, n = noise.shape
    k = n // r
    source = torch.full((groups, n), -1)
    keep, masks, restores, mixed = [], [], [], []
    for g in range(groups):
        order = sorted(range(n), key=lambda i: noise[g, i].item())
        for rank, pos in enumerate(order[:r * k]):
            source[g, pos] = rank // k
        mixed.append(order[:r * k])
        for m in range(r):
            shuffle = order[m * k:] + order[:m * k]
            keep.append(shuffle[:k])
            masks.append([0.0 if source[g, i] == m else 1.0 for i in range(n)])
            restores.append([shuffle.index(i) for i in range(n)])
    return (torch.tensor(mixed), source, torch.tensor(keep), torch.tensor(masks),
            torch.tensor(restores))


@pytest.mark.parametrize(("n", "r"), [(16, 4), (49, 4), (16, 2), (9, 3)])
def test_patch_mixing_matches_the_rule(n, r):
    noise = torch.rand(3, n, generator=torch.Generator().manual_seed(n + r))
    got = patch_mixing(3, n, r, noise=noise)
    for a, b in zip(got, reference_mixing(noise, r), strict=True):
        assert torch.equal(a, b.to(a.dtype))


def test_patch_mixing_by_hand():
    noise = torch.tensor([[0.5, 0.1, 0.9, 0.3, 0.7]])  # shuffle: 1, 3, 0, 4, 2
    mix = patch_mixing(1, 5, 2, noise=noise)
    assert mix.ids_mixed.tolist() == [[1, 3, 0, 4]]
    assert mix.source.tolist() == [[1, 0, -1, 0, 1]]  # position 2 is nobody's
    assert mix.ids_keep.tolist() == [[1, 3], [0, 4]]
    assert mix.mask.tolist() == [[1, 0, 1, 0, 1], [0, 1, 1, 1, 0]]


def test_patch_mixing_members_are_maes_masks():
    mix = patch_mixing(8, 49, 4, generator=torch.Generator().manual_seed(0))
    assert mix.ids_keep.shape == (32, 12) and mix.ids_mixed.shape == (8, 48)
    assert (mix.mask.sum(1) == 49 - 12).all()
    kept = torch.zeros(32, 49).scatter(1, mix.ids_keep, 1.0)
    assert torch.equal(kept, 1 - mix.mask)
    # the encoder's order holds member 0's run, then member 1's, ...: each member's ids_keep
    assert torch.equal(mix.ids_mixed.reshape(32, 12), mix.ids_keep)
    assert torch.equal(torch.gather(mix.ids_restore, 1, mix.ids_keep),
                       torch.arange(12).expand(32, -1))
    assert ((mix.source == -1).sum(1) == 1).all()


def test_patch_mixing_rejects_bad_groups():
    with pytest.raises(ValueError, match="2 images"):
        patch_mixing(2, 16, 1)
    with pytest.raises(ValueError, match="cannot give"):
        patch_mixing(2, 3, 4)


def test_mix_images_takes_each_patch_from_its_owner():
    x = torch.randn(6, 2, 8, 8)  # 3 groups of 2
    mix = patch_mixing(3, 16, 2, generator=torch.Generator().manual_seed(1))
    mixed = patchify(mix_images(x, mix.source, 2), 2)  # (3, 16, 8)
    patches = patchify(x, 2)
    for g in range(3):
        for i in range(16):
            owner = mix.source[g, i].item()
            want = patches[2 * g + owner, i] if owner >= 0 else torch.zeros(8)
            assert torch.equal(mixed[g, i], want)
    with pytest.raises(ValueError, match="groups"):
        mix_images(x[:5], mix.source, 2)
    with pytest.raises(ValueError, match="positions"):
        mix_images(x, mix.source[:, :9], 2)


def test_mix_images_leaves_nobodys_positions_at_zero():
    x = torch.ones(4, 1, 6, 6)
    mix = patch_mixing(1, 9, 4, noise=torch.arange(9.0)[None])  # position 8 is nobody's
    mixed = mix_images(x, mix.source, 2)
    assert mixed[0, 0, 4:, 4:].abs().sum() == 0 and mixed[0, 0, :4].eq(1).all()


def test_homologous_attention_mask_by_hand():
    got = homologous_attention_mask(torch.tensor([[0, 1, 0]]))
    want = torch.tensor([[1, 1, 1, 1],
                         [1, 1, 0, 1],
                         [1, 0, 1, 0],
                         [1, 1, 0, 1]], dtype=torch.bool)
    assert torch.equal(got[0], want)
