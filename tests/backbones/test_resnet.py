import pytest
import torch

from selfsup.backbones import BACKBONES, Preprocessing, build_backbone
from selfsup.backbones.io import load_encoder, save_encoder


@pytest.mark.parametrize("name", ["resnet10w32", "resnet10w48", "resnet18"])
@pytest.mark.parametrize("channels", [1, 3])
def test_pooled_features_any_channels(name, channels):
    net = build_backbone(name, channels=channels, input_size=28).eval()
    out = net(torch.randn(2, channels, 28, 28))
    assert out.shape == (2, net.dim)
    assert net.preprocessing.channels == channels


def test_widths_and_dims():
    assert build_backbone("resnet10w32", channels=1, input_size=28).dim == 256
    assert build_backbone("resnet10w48", channels=1, input_size=28).dim == 384
    assert build_backbone("resnet18", channels=3, input_size=32).dim == 512
    assert build_backbone("resnet50", channels=3, input_size=32).dim == 2048


def test_small_stem_chosen_for_small_inputs():
    small = build_backbone("resnet18", channels=3, input_size=64)
    big = build_backbone("resnet18", channels=3, input_size=224)
    assert small.net.conv1.kernel_size == (3, 3) and small.net.conv1.stride == (1, 1)
    assert isinstance(small.net.maxpool, torch.nn.Identity)
    assert big.net.conv1.kernel_size == (7, 7) and big.net.conv1.stride == (2, 2)


def test_unknown_backbone_lists_valid():
    with pytest.raises(ValueError) as e:
        build_backbone("vgg", channels=3, input_size=32)
    for name in BACKBONES:
        assert name in str(e.value)


def test_preprocessing_resizes_and_normalizes():
    pre = Preprocessing(8, 1, (0.5,), (0.25,))
    x = torch.full((2, 1, 16, 12), 255, dtype=torch.uint8)
    out = pre(x)
    assert out.shape == (2, 1, 8, 8)
    assert torch.allclose(out, torch.full_like(out, 2.0))  # (1 - 0.5) / 0.25
    assert pre(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)).shape == (1, 1, 8, 8)


def test_save_load_roundtrip(tmp_path):
    net = build_backbone("resnet10w32", channels=1, input_size=28, mean=(0.3,), std=(0.4,))
    net = net.to(memory_format=torch.channels_last).eval()
    save_encoder(net, tmp_path, {"method": "simclr"})
    loaded = load_encoder(tmp_path)
    x = torch.randn(3, 1, 28, 28)
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    # the memory format may pick another conv kernel: equal up to float rounding
    torch.testing.assert_close(net(x), loaded(x), rtol=1e-5, atol=1e-5)
    assert loaded.preprocessing == net.preprocessing


def test_load_missing_run_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="finished selfsup run"):
        load_encoder(tmp_path)


def test_three_stage_trunk_stops_after_layer3():
    """resnet8w32, Selfie's patch network: resnet10w32 without its fourth stage."""
    net = build_backbone("resnet8w32", channels=1, input_size=8).eval()
    x = torch.randn(2, 1, 8, 8)
    feats = net.named_features(x)
    assert list(feats) == ["stem", "layer1", "layer2", "layer3"] and net.dim == 128
    torch.testing.assert_close(feats["layer3"], net(x))
    assert not any(k.startswith("net.layer4") for k in net.state_dict())
