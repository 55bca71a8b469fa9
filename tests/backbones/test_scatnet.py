"""The scattering backbone: shapes, the fixed transform, what trains and what is saved."""

from __future__ import annotations

import ast
import copy
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from selfsup.backbones import build_backbone
from selfsup.backbones.io import load_encoder, save_encoder
from selfsup.backbones.scatnet import _scattering_2d, scattering_channels


def scatnet(channels: int = 1, side: int = 28, **config) -> torch.nn.Module:
    return build_backbone("scatnet", channels=channels, input_size=side, **config)


def test_kymatio_is_imported_only_when_a_scatnet_first_runs():
    # ``import selfsup`` registers every backbone; the optional-weight kymatio import must wait
    # for the first forward (a subprocess check would cost a cold ``import selfsup``)
    import selfsup.backbones.scatnet as module

    tree = ast.parse(Path(module.__file__).read_text())
    top_level = [alias.name for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
                 for alias in (node.names if isinstance(node, ast.Import) else
                               [ast.alias(node.module or "")])]
    assert top_level and not any(name.startswith("kymatio") for name in top_level)
    net = scatnet(1, 8)
    assert net._transforms == {}  # built lazily, on the first forward
    net(torch.randn(2, 1, 8, 8))
    assert list(net._transforms) == [(8, "cpu")]


def test_scattering_channels_formula():
    # 1 + J L + L^2 J (J - 1) / 2
    assert scattering_channels(2, 8) == 81  # ScatSimCLR's J = 2, L = 8
    assert scattering_channels(1, 8) == 9
    assert scattering_channels(3, 4) == 1 + 12 + 16 * 3


@pytest.mark.parametrize("J, L", [(1, 4), (2, 8), (3, 2)])
def test_scattering_channels_is_what_kymatio_gives(J, L):
    out = _scattering_2d(J, L, 16)(torch.randn(2, 1, 16, 16))  # (B, C, K, 16 / 2^J, ...)
    assert out.shape == (2, 1, scattering_channels(J, L), 16 // 2**J, 16 // 2**J)


@pytest.mark.parametrize("channels, side, maps", [(1, 28, 7), (3, 32, 8), (1, 8, 2)])
def test_output_dims(channels, side, maps):
    net = scatnet(channels, side, width=24, blocks=2).eval()
    x = torch.randn(3, channels, side, side)
    assert net.scatter(x).shape == (3, channels * 81, maps, maps)
    assert net(x).shape == (3, 24) and net.dim == 24
    feats = net.named_features(x)
    assert list(feats) == ["scattering", "stem", "block1", "block2"]
    assert feats["scattering"].shape == (3, channels * 81)
    torch.testing.assert_close(feats["block2"], net(x))


def test_channels_are_scattered_one_by_one():
    net = scatnet(2, 16)
    x = torch.randn(4, 2, 16, 16)
    both = net.scatter(x)  # (4, 2 * 81, 4, 4): channel 0's 81 maps, then channel 1's
    torch.testing.assert_close(both[:, :81], net.scatter(x[:, :1]))
    torch.testing.assert_close(both[:, 81:], net.scatter(x[:, 1:]))


def test_constant_image_has_only_the_low_pass_map():
    # the wavelets have zero mean: a constant image leaves only order 0 (its local average)
    net = scatnet(1, 16)
    s = net.scatter(torch.full((1, 1, 16, 16), 2.5))  # (1, 81, 4, 4)
    torch.testing.assert_close(s[:, 0], torch.full_like(s[:, 0], 2.5), atol=1e-4, rtol=1e-4)
    assert s[:, 1:].abs().max() < 1e-4


def test_side_not_a_multiple_of_the_subsampling_is_resized_up():
    net = scatnet(1, 30)
    assert net.padded_side(30) == 32 and net.padded_side(28) == 28 and net.padded_side(2) == 4
    x = torch.randn(2, 1, 30, 30)
    s = net.scatter(x)
    assert s.shape == (2, 81, 8, 8)
    resized = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(s, net.scatter(resized))


def test_non_square_input_is_an_error():
    with pytest.raises(ValueError, match="square"):
        scatnet(1, 28).scatter(torch.randn(1, 1, 28, 24))


def test_filters_stay_out_of_the_state_dict():
    net = scatnet(1, 28)
    before = set(net.state_dict())
    net(torch.randn(2, 1, 28, 28))  # builds and caches the kymatio transform
    assert net._transforms
    assert set(net.state_dict()) == before
    prefixes = {key.split(".")[0] for key in before}
    assert prefixes == {"scatter_norm", "stem", "blocks"}


def test_only_the_adapter_trains():
    net = scatnet(1, 16, width=8, blocks=1)
    x = torch.randn(4, 1, 16, 16, requires_grad=True)
    assert not net.scatter(x).requires_grad  # fixed transform: no graph through it
    net(x).sum().backward()
    assert x.grad is None
    trainable = {name.split(".")[0] for name, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"scatter_norm", "stem", "blocks"}
    assert all(p.grad is not None for p in net.parameters())


def test_pickles_and_copies_without_the_cached_filters():
    net = scatnet(1, 16, width=8, blocks=1).eval()
    x = torch.randn(3, 1, 16, 16)
    want = net(x)
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert clone._transforms == {}
        torch.testing.assert_close(clone(x), want)
    assert net._transforms  # the original keeps its cache


def test_save_load_roundtrip(tmp_path):
    net = scatnet(1, 28, width=16, blocks=1, L=4).eval()
    save_encoder(net, tmp_path, {"method": "scatsimclr"})
    loaded = load_encoder(tmp_path).eval()
    assert loaded.config == net.config
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), net(x))


@pytest.mark.parametrize("config, match", [({"J": 0}, "J >= 1"), ({"width": 0}, "width"),
                                           ({"blocks": -1}, "blocks"),
                                           ({"depth": 3}, "unknown scatnet setting")])
def test_bad_settings(config, match):
    with pytest.raises(ValueError, match=match):
        scatnet(1, 28, **config)
