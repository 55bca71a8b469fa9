"""Noise2Void's UNet (backbones/unet.py): any image size in and out, the channel plan and
parameter count by hand, and a receptive field the gradient never exceeds."""

import pytest
import torch

from selfsup.backbones.unet import UNet


@pytest.mark.parametrize("size", [(64, 64), (37, 50), (5, 7)])
def test_any_size_in_the_same_size_out(size):
    model = UNet(channels=3).eval()
    x = torch.rand(2, 3, *size)
    assert model(x).shape == x.shape
    gray = UNet(channels=1, out_channels=2, depth=3, first=8).eval()
    assert gray(torch.rand(1, 1, *size)).shape == (1, 2, *size)


def test_parameters_by_hand():
    # depth 1, first 4, no batch norm, 1 channel: down 1->4, 4->4; bottom 4->8, 8->4; up (4+4)->4,
    # 4->4; head 4->1. Each 3x3 conv has 9*cin*cout weights + cout biases.
    model = UNet(channels=1, depth=1, first=4, batch_norm=False)
    convs = [(1, 4), (4, 4), (4, 8), (8, 4), (8, 4), (4, 4)]
    expected = sum(9 * i * o + o for i, o in convs) + (4 * 1 + 1)
    # 40 + 148 + 296 + 292 + 292 + 148 + 5
    assert sum(p.numel() for p in model.parameters()) == expected == 1221


def test_receptive_field_bounds_the_gradient():
    model = UNet(channels=1, depth=2, first=4).eval()
    assert model.receptive_field == 44  # 1 + (4 + 1) + (8 + 2) + 16 + 8 + 4
    x = torch.rand(1, 1, 96, 96, requires_grad=True)
    model(x)[0, 0, 48, 48].backward()
    rows, cols = (x.grad[0, 0].abs() > 0).nonzero(as_tuple=True)
    reach = max(int(rows.max() - rows.min()), int(cols.max() - cols.min())) + 1
    assert 0 < reach <= model.receptive_field


def test_residual_and_bad_settings():
    model = UNet(channels=1, residual=True).eval()
    for p in model.head.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(model(x), x)  # a zero head leaves the input: the residual path
    with pytest.raises(ValueError, match="residual"):
        UNet(channels=3, out_channels=1, residual=True)
    with pytest.raises(ValueError, match="depth >= 1"):
        UNet(depth=0)
