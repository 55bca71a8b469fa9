"""The registered random-field view maker: two_crop's views, then random-field warps and colour."""

import math

import pytest
import torch

from selfsup.backbones import Preprocessing
from selfsup.views import VIEWS, RandomFieldViews, TwoCropViews, ViewConfig, build_views


def _images(c: int, size: int = 16, b: int = 6) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, c, size, size), dtype=torch.uint8, generator=gen)


def _pre(c: int, size: int = 16) -> Preprocessing:
    return Preprocessing(size, c, (0.4,) * c, (0.3,) * c)


def _both(cfg: dict, c: int, seed: int = 0, size: int = 16):
    """two_crop's and random_field's views of one batch, from the same RNG state."""
    x, pre = _images(c, size), _pre(c, size)
    torch.manual_seed(seed)
    plain = TwoCropViews(pre, ViewConfig(**cfg))(x)
    torch.manual_seed(seed)
    field = RandomFieldViews(pre, ViewConfig(kind="random_field", **cfg))(x)
    return plain, field


@pytest.mark.parametrize("channels", [1, 3])
def test_strength_zero_is_two_crop_for_the_same_rng_state(channels):
    # 3 channels run kornia's colour jitter and grayscale too, which draw from the same RNG
    cfg = {"field_strength": 0.0, "crop_scale": (0.3, 1.0), "crop_ratio": 0.75}
    plain, field = _both(cfg, channels)
    for a, b in zip(plain, field, strict=True):
        assert a.shape == (6, channels, 12, 12)
        assert torch.equal(a, b)


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_range_and_every_sample_transformed(channels):
    torch.manual_seed(1)
    pre = _pre(channels, 28)
    views = build_views(pre, ViewConfig(kind="random_field", field_strength=1.0,
                                        crop_ratio=0.72))
    assert isinstance(views, RandomFieldViews)
    v1, v2 = views(_images(channels, 28))
    assert v1.shape == v2.shape == (6, channels, 20, 20) and v1.dtype == torch.float32
    lo, hi = (0 - 0.4) / 0.3, (1 - 0.4) / 0.3  # [0, 1] pixels after normalization
    for v in (v1, v2):
        assert v.min() >= lo - 1e-5 and v.max() <= hi + 1e-5
    assert views.one_view(_images(channels, 28)).shape == (6, channels, 20, 20)


@pytest.mark.parametrize("channels", [1, 3])
def test_strength_scales_the_departure_from_two_crop(channels):
    cfg = {"crop_scale": (0.5, 1.0), "jitter_p": 0.0, "flip_p": 0.0}
    gaps = []
    for strength in (0.5, 1.0, 3.0):
        plain, field = _both({**cfg, "field_strength": strength}, channels, size=24)
        gaps.append(float(sum((a - b).abs().mean() for a, b in zip(plain, field, strict=True))))
    assert 0 < gaps[0] < gaps[1] < gaps[2]


def test_infinite_correlation_is_one_global_transform_per_view():
    # a constant field makes the brightness shift the same at every pixel (below the clamp)
    cfg = ViewConfig(kind="random_field", field_strength=2.0, field_correlation=math.inf,
                     crop_scale=(1.0, 1.0), flip_p=0.0, jitter_p=0.0)
    views = RandomFieldViews(Preprocessing(16, 1, (0.0,), (1.0,)), cfg)
    views.warp_amplitude = dict.fromkeys(views.warp_amplitude, 0.0)  # colour only
    x = torch.full((4, 1, 16, 16), 128, dtype=torch.uint8)
    v1, v2 = views(x)
    for v in (v1, v2):
        shift = v - 128 / 255
        assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6)
        assert shift.abs().amax() > 0


def test_registered_and_validated():
    assert VIEWS["random_field"] is RandomFieldViews
    with pytest.raises(ValueError, match="field_strength"):
        ViewConfig.from_dict({"kind": "random_field", "field_strength": -1})
    with pytest.raises(ValueError, match="field_correlation"):
        ViewConfig.from_dict({"kind": "random_field", "field_correlation": "wide"})
    with pytest.raises(TypeError, match="uint8"):
        RandomFieldViews(_pre(1))(torch.rand(2, 1, 16, 16))
