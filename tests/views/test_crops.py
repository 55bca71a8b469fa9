import numpy as np
import pytest
import torch

from selfsup.backbones import Preprocessing
from selfsup.views import TwoCropViews, ViewConfig


def _ramp(n: int, c: int = 1, size: int = 28) -> torch.Tensor:
    # the same asymmetric image repeated: any difference between samples comes from the views
    img = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size)
    img = (img / img.max() * 255).to(torch.uint8)
    return img.expand(n, c, size, size).contiguous()


def test_each_sample_gets_its_own_crop():
    torch.manual_seed(0)
    views = TwoCropViews(Preprocessing(28, 1, (0.5,), (0.5,)),
                         ViewConfig(jitter_p=0.0, flip_p=0.0))
    v1, v2 = views(_ramp(8))
    assert v1.shape == v2.shape == (8, 1, 28, 28)
    assert not torch.allclose(v1[0], v1[1])  # two samples of one batch differ
    assert not torch.allclose(v1[0], v2[0])  # and so do the two views of one sample


def test_three_channel_pipeline_and_normalization():
    torch.manual_seed(0)
    pre = Preprocessing(16, 3, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    views = TwoCropViews(pre, ViewConfig(blur_p=0.5, solarize_p=0.2))
    v1, _ = views(torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8))
    assert v1.shape == (4, 3, 16, 16) and v1.dtype == torch.float32
    assert v1.min() >= -1.0 - 1e-5 and v1.max() <= 1.0 + 1e-5


def test_identity_views_reduce_to_preprocessing():
    cfg = ViewConfig(crop_scale=(1.0, 1.0), flip_p=0.0, jitter_p=0.0)
    pre = Preprocessing(28, 1, (0.2,), (0.3,))
    x = _ramp(2)
    v1, _ = TwoCropViews(pre, cfg)(x)
    # scale 1 leaves no box but the whole image (torchvision's fallback), so nothing changes
    torch.testing.assert_close(v1, pre(x), atol=1e-4, rtol=0)


def test_rejects_float_input():
    views = TwoCropViews(Preprocessing(8, 1, (0.5,), (0.5,)))
    with pytest.raises(TypeError, match="uint8"):
        views(torch.rand(2, 1, 8, 8))


def test_crop_size_below_input_size():
    views = TwoCropViews(Preprocessing(28, 1, (0.5,), (0.5,)), ViewConfig(crop_size=20))
    v1, v2 = views(_ramp(3))
    assert v1.shape == v2.shape == (3, 1, 20, 20)


def test_crop_ratio_scales_with_input_size():
    for input_size, expected in [(28, 24), (64, 55)]:
        pre = Preprocessing(input_size, 1, (0.5,), (0.5,))
        v1, _ = TwoCropViews(pre, ViewConfig(crop_ratio=0.86))(_ramp(2, size=input_size))
        assert v1.shape[-1] == expected


def _progressive(min_crop_ratio: float = 0.5, **cfg) -> TwoCropViews:
    pre = Preprocessing(28, 1, (0.5,), (0.5,))  # final crops 0.72 x 28 = 20 px
    return TwoCropViews(pre, ViewConfig(crop_ratio=0.72, min_crop_ratio=min_crop_ratio, **cfg))


def test_progressive_resizing_follows_ffcv_ramp():
    views = _progressive(resolution_ramp=(0.5, 0.75))  # 14 px until half way, 20 px at 3/4
    progress = np.array([0.0, 0.25, 0.5, 0.625, 0.75, 1.0])
    # by hand: 14 + (20 - 14) * (0.625 - 0.5) / 0.25 = 17
    assert views.side_at(progress).tolist() == [14, 14, 14, 17, 20, 20]
    torch.testing.assert_close(torch.as_tensor(views.relative_cost(progress)),
                               torch.as_tensor([0.49, 0.49, 0.49, 0.7225, 1.0, 1.0],
                                               dtype=torch.float64))
    for p, side in [(0.0, 14), (0.625, 17), (1.0, 20)]:
        views.set_progress(p)
        v1, v2 = views(_ramp(2))
        assert v1.shape == v2.shape == (2, 1, side, side)


def test_one_size_without_progressive_resizing():
    views = TwoCropViews(Preprocessing(28, 1, (0.5,), (0.5,)), ViewConfig(crop_ratio=0.72))
    views.set_progress(0.0)
    assert views(_ramp(2))[0].shape[-1] == 20
    assert views.relative_cost(np.linspace(0, 1, 5)).tolist() == [1.0] * 5


def test_progressive_resizing_rejects_crops_that_shrink_and_bad_ramps():
    with pytest.raises(ValueError, match="min_crop_ratio gives 25 px"):
        _progressive(min_crop_ratio=0.9)
    with pytest.raises(ValueError, match="resolution_ramp"):
        ViewConfig(min_crop_ratio=0.5, resolution_ramp=(0.9, 0.5)).validate()
    with pytest.raises(ValueError, match="min_crop_ratio"):
        ViewConfig(min_crop_ratio=0.0).validate()


def _equal_steps(v: torch.Tensor) -> torch.Tensor:
    """Per pixel, whether R - G == G - B still holds. Brightness and contrast act on every
    channel alike (an add, a scale) and kornia's saturation scales HSV saturation at a fixed hue,
    so they keep it where no channel was clipped; a hue rotation breaks it."""
    r, g, b = v.unbind(1)  # (B, H, W) each
    inside = (v > 0.01).all(1) & (v < 0.99).all(1)
    return ((r - g) - (g - b)).abs()[inside] < 1e-3


@pytest.mark.parametrize("color_strength, hue_moves", [(0.0, False), (None, True)])
def test_color_strength_sets_saturation_and_hue_apart(color_strength, hue_moves):
    torch.manual_seed(0)
    # every pixel R, G, B = 118, 128, 138: equal steps, mid-range
    x = torch.tensor([118, 128, 138], dtype=torch.uint8).view(1, 3, 1, 1).expand(64, 3, 8, 8)
    cfg = ViewConfig(crop_scale=(1.0, 1.0), flip_p=0.0, jitter_p=1.0, grayscale_p=0.0,
                     jitter_strength=1.0, color_strength=color_strength)
    crops = TwoCropViews(Preprocessing(8, 3, (0.5,) * 3, (0.5,) * 3), cfg).crop
    v = crops.unnormalized(x.contiguous())  # (64, 3, 8, 8) in [0, 1]
    kept = _equal_steps(v)
    assert kept.numel() > 64  # enough pixels stay unclipped to judge by
    assert bool(kept.all()) is not hue_moves
    assert v.std(0).max() > 0.05  # brightness and contrast still vary between samples


def test_negative_color_strength_is_refused():
    with pytest.raises(ValueError, match="color_strength"):
        ViewConfig.from_dict({"color_strength": -0.5})
