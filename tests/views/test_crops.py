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
