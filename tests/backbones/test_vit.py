import math

import numpy as np
import pytest
import torch

from selfsup.backbones import Preprocessing, backbone_from_config, build_backbone
from selfsup.backbones.io import load_encoder, save_encoder
from selfsup.backbones.vit import VisionTransformer, sincos_pos_embed_2d


def tiny(channels=1, input_size=28, patch_size=4, pool="cls", depth=2):
    pre = Preprocessing(input_size, channels, (0.5,) * channels, (0.25,) * channels)
    return VisionTransformer(pre, name="vit_tiny", channels=channels, input_size=input_size,
                             patch_size=patch_size, dim=32, depth=depth, heads=2, pool=pool)


def reference_2d_sincos(embed_dim, grid_size):
    """The official MAE ``util/pos_embed.py`` computation, step by step, in numpy."""

    def one_d(d, pos):
        omega = np.arange(d // 2, dtype=np.float64) / (d / 2.0)
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape([2, 1, grid_size, grid_size])
    emb = np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], 1)
    return np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("patch_size", [2, 4])
def test_shapes(channels, patch_size):
    net = tiny(channels, 28, patch_size).eval()
    x = torch.randn(2, channels, 28, 28)
    n = (28 // patch_size) ** 2
    assert net.grid_size == 28 // patch_size and net.num_patches == n
    assert net(x).shape == (2, 32)
    assert net.tokens(x).shape == (2, 1 + n, 32)
    keep = torch.stack([torch.randperm(n)[:5] for _ in range(2)])
    assert net.tokens(x, keep=keep).shape == (2, 6, 32)


def test_registered_sizes_and_default_patch():
    net = build_backbone("vit_tiny", channels=1, input_size=28)
    assert (net.dim, len(net.blocks), net.patch_size, net.num_patches) == (192, 12, 4, 49)
    assert net.blocks[0].attn.num_heads == 3
    small = build_backbone("vit_small", channels=3, input_size=64, depth=1)
    assert (small.dim, small.patch_size, small.grid_size) == (384, 8, 8)  # input_size // 8
    assert small.blocks[0].attn.num_heads == 6
    assert build_backbone("vit_tiny", channels=1, input_size=28, patch_size=2,
                          depth=1).num_patches == 196
    with pytest.raises(ValueError, match="valid"):
        build_backbone("vit_tiny", channels=1, input_size=28, width=3)


def test_bad_sizes_are_clear():
    with pytest.raises(ValueError, match="multiple of the patch size"):
        tiny(input_size=30, patch_size=4)
    with pytest.raises(ValueError, match="pool"):
        tiny(pool="max")
    with pytest.raises(ValueError, match="1-channel"):
        tiny()(torch.randn(1, 3, 28, 28))
    with pytest.raises(ValueError, match="square"):
        tiny()(torch.randn(1, 1, 28, 24))


def test_keep_all_in_order_equals_full_path():
    net = tiny().eval()
    x = torch.randn(3, 1, 28, 28)
    full = net.tokens(x)
    keep = torch.arange(49).expand(3, -1)
    torch.testing.assert_close(net.tokens(x, keep=keep), full)
    # any order: the positions travel with the tokens, so the output is the same permuted
    perm = torch.stack([torch.randperm(49) for _ in range(3)])
    out = net.tokens(x, keep=perm)
    torch.testing.assert_close(out[:, 0], full[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[:, 1:], torch.gather(full[:, 1:], 1,
                                                        perm[..., None].expand(-1, -1, 32)),
                               rtol=1e-5, atol=1e-5)


def test_pos_embed_against_reference_and_by_hand():
    emb = sincos_pos_embed_2d(32, 7)  # (50, 32)
    assert emb.dtype == torch.float32 and emb.shape == (50, 32)
    np.testing.assert_allclose(emb.numpy(), reference_2d_sincos(32, 7), atol=1e-6)
    assert torch.equal(emb[0], torch.zeros(32))
    row, col = 2, 5
    e = emb[1 + row * 7 + col]  # quarters: sin(col), cos(col), sin(row), cos(row)
    assert math.isclose(e[1], math.sin(col * 10000 ** (-1 / 8)), abs_tol=1e-6)
    assert math.isclose(e[8 + 3], math.cos(col * 10000 ** (-3 / 8)), abs_tol=1e-6)
    assert math.isclose(e[16 + 2], math.sin(row * 10000 ** (-2 / 8)), abs_tol=1e-6)
    assert math.isclose(e[24], math.cos(row), abs_tol=1e-6)
    net = tiny()
    assert "pos_embed" in dict(net.named_buffers())
    assert "pos_embed" not in dict(net.named_parameters())
    torch.testing.assert_close(net.pos_embed[0], emb)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_named_features_last_is_forward(pool):
    net = tiny(pool=pool, depth=3).eval()
    x = torch.randn(2, 1, 28, 28)
    feats = net.named_features(x)
    assert list(feats) == ["block1", "block2", "block3"]
    assert all(f.shape == (2, 32) for f in feats.values())
    torch.testing.assert_close(feats["block3"], net(x))
    if pool == "mean":
        torch.testing.assert_close(net(x), net.tokens(x)[:, 1:].mean(1))


def test_lr_layer_id_covers_every_parameter():
    net = tiny(depth=3)
    ids = {name: net.lr_layer_id(name) for name, _ in net.named_parameters()}
    assert all(0 <= i < net.num_lr_layers for i in ids.values())
    assert set(ids.values()) == set(range(net.num_lr_layers)) == set(range(5))
    assert ids["cls_token"] == ids["patch_embed.weight"] == net.lr_layer_id("pos_embed") == 0
    assert ids["blocks.0.attn.qkv.weight"] == 1 and ids["blocks.2.mlp.fc2.bias"] == 3
    assert ids["norm.weight"] == 4


def test_mae_init():
    net = tiny()
    assert torch.equal(net.blocks[0].attn.qkv.bias, torch.zeros_like(net.blocks[0].attn.qkv.bias))
    w = net.patch_embed.weight  # xavier-uniform as a (dim, p*p*C) Linear
    bound = math.sqrt(6 / (32 + 16))
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound


def test_config_rebuilds_an_equal_module(tmp_path):
    net = tiny(channels=3, input_size=32, pool="mean").eval()
    again = backbone_from_config(net.config, net.preprocessing.to_dict()).eval()
    assert again.config == net.config
    again.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(again(x), net(x))
    save_encoder(net, tmp_path)
    torch.testing.assert_close(load_encoder(tmp_path)(x), net(x))


def test_smaller_training_crops_get_their_own_sincos_grid():
    net = build_backbone("vit_tiny", channels=1, input_size=28, depth=1).eval()
    x = torch.randn(2, 1, 20, 20)  # SimCLR's 0.72-side crops: a 5x5 grid of 4 px patches
    assert net(x).shape == (2, 192)
    assert torch.equal(net._positions(5), sincos_pos_embed_2d(192, 5)[None])
    assert net._positions(7) is net.pos_embed
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.randn(2, 1, 22, 22))


def reference_masked_tokens(net, x, keep, allowed, extra):
    """``tokens`` with an attention mask and extra embeddings, step by step: embed, add
    positions and the extra embeddings, gather, prepend CLS, then in every block pre-norm
    attention with the disallowed logits at -inf (one softmax per head) and the MLP."""
    pos = net.pos_embed
    patches = net.patch_embed(x).flatten(2).transpose(1, 2) + pos[:, 1:] + extra
    patches = torch.stack([patches[b, keep[b]] for b in range(len(x))])
    t = torch.cat([(net.cls_token + pos[:, :1]).expand(len(x), -1, -1), patches], dim=1)
    for blk in net.blocks:
        a = blk.attn
        h = blk.norm1(t)
        b, n, c = h.shape
        qkv = a.qkv(h).reshape(b, n, 3, a.num_heads, c // a.num_heads)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (B, heads, N, c/heads)
        logits = q @ k.transpose(-2, -1) / math.sqrt(c // a.num_heads)
        logits = logits.masked_fill(~allowed[:, None], float("-inf"))
        out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        t = t + a.proj(out)
        t = t + blk.mlp(blk.norm2(t))
    return net.norm(t)


def test_attention_mask_and_extra_embed_match_the_step_by_step_reference():
    torch.manual_seed(0)
    net = tiny(input_size=8, patch_size=2).eval()
    x = torch.randn(2, 1, 8, 8)
    keep = torch.stack([torch.randperm(16)[:10] for _ in range(2)])  # (2, 10)
    allowed = torch.rand(2, 11, 11) < 0.5
    allowed |= torch.eye(11, dtype=torch.bool)  # every query keeps a key
    extra = torch.randn(2, 16, 32)
    got = net.tokens(x, keep=keep, attn_mask=allowed, extra_embed=extra)
    want = reference_masked_tokens(net, x, keep, allowed, extra)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_an_all_true_mask_and_zero_extra_embed_change_nothing():
    net = tiny().eval()
    x = torch.randn(3, 1, 28, 28)
    full = net.tokens(x)
    out = net.tokens(x, attn_mask=torch.ones(3, 50, 50, dtype=torch.bool),
                     extra_embed=torch.zeros(3, 49, 32))
    torch.testing.assert_close(out, full, atol=1e-6, rtol=1e-6)


def test_extra_embed_acts_as_a_shifted_position():
    net = tiny(input_size=8, patch_size=2).eval()
    shift = torch.randn(1, 16, 32)
    x = torch.randn(2, 1, 8, 8)
    got = net.tokens(x, extra_embed=shift.expand(2, -1, -1))
    with torch.no_grad():
        net.pos_embed[:, 1:] += shift
    torch.testing.assert_close(got, net.tokens(x))


def test_patches_masked_off_each_other_do_not_interact():
    """Two groups of patches that see neither each other nor the class token: a group's
    outputs do not move when the other group's pixels change."""
    net = tiny(input_size=8, patch_size=2).eval()
    group = torch.arange(16) % 2  # (16,) alternate patches
    allowed = torch.zeros(17, 17, dtype=torch.bool)
    allowed[1:, 1:] = group[:, None] == group[None, :]
    allowed[0] = True
    allowed = allowed.expand(2, -1, -1)
    x = torch.randn(2, 1, 8, 8)
    y = x.clone()
    y[:, :, 0:2, 2:4] += 1.0  # patch 1, of group 1
    a, b = net.tokens(x, attn_mask=allowed), net.tokens(y, attn_mask=allowed)
    zero = torch.cat([torch.tensor([False]), group == 0])
    torch.testing.assert_close(a[:, zero], b[:, zero])
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_bad_masks_and_extra_embeddings_are_clear():
    net = tiny(input_size=8, patch_size=2)
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match="bool"):
        net.tokens(x, attn_mask=torch.ones(2, 17, 17))
    with pytest.raises(ValueError, match=r"\(2, 17, 17\)"):
        net.tokens(x, attn_mask=torch.ones(2, 16, 16, dtype=torch.bool))
    empty = torch.ones(2, 17, 17, dtype=torch.bool)
    empty[1, 3] = False
    with pytest.raises(ValueError, match="no key"):
        net.tokens(x, attn_mask=empty)
    with pytest.raises(ValueError, match="extra_embed"):
        net.tokens(x, extra_embed=torch.zeros(2, 15, 32))
