import math

import torch
import torchvision.transforms.functional as TF

from selfsup.views.geometric import crop_boxes, random_resized_crop_flip, resized_crop_flip


def _image(b: int = 3, size: int = 28) -> torch.Tensor:
    return torch.rand(b, 1, size, size, generator=torch.Generator().manual_seed(0))


def _one(value: float, b: int = 3) -> torch.Tensor:
    return torch.full((b,), value)


def test_full_box_is_the_identity_and_flip_mirrors():
    x = _image()
    same = resized_crop_flip(x, 28, _one(1), _one(1), _one(0), _one(0), torch.zeros(3, dtype=bool))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    mirrored = resized_crop_flip(x, 28, _one(1), _one(1), _one(0), _one(0),
                                 torch.ones(3, dtype=bool))
    torch.testing.assert_close(mirrored, x.flip(-1), atol=1e-5, rtol=0)


def test_quarter_box_is_the_top_left_quarter_exactly():
    # w = h = 0.5 centred at (-0.5, -0.5) in [-1, 1] coordinates is pixels 0..13 of 28; at 14 px
    # output every sample point lands on an input pixel centre, so no interpolation happens
    x = _image()
    out = resized_crop_flip(x, 14, _one(0.5), _one(0.5), _one(-0.5), _one(-0.5),
                            torch.zeros(3, dtype=bool))
    torch.testing.assert_close(out, x[..., :14, :14], atol=1e-5, rtol=0)


def test_matches_torchvision_resized_crop_on_a_box():
    # the bottom-right 20x16 (h x w) region resized to 10x10 = torchvision's bilinear
    # resized_crop without antialiasing, up to the half-pixel conventions both share
    x = _image(1)
    out = resized_crop_flip(x, 10, torch.tensor([16 / 28]), torch.tensor([20 / 28]),
                            torch.tensor([1 - 16 / 28]), torch.tensor([1 - 20 / 28]),
                            torch.zeros(1, dtype=bool))
    ref = TF.resized_crop(x, 8, 12, 20, 16, [10, 10], antialias=False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_boxes_follow_the_random_resized_crop_distribution():
    torch.manual_seed(0)
    w, h, cx, cy = crop_boxes(20_000, 28, 28, (0.5, 1.0), (3 / 4, 4 / 3), torch.device("cpu"))
    fallback = (w == 1) & (h == 1)
    area, aspect = (w * h)[~fallback], (w / h)[~fallback]
    assert area.min() >= 0.5 - 1e-6 and area.max() <= 1.0 + 1e-6
    assert aspect.min() >= 3 / 4 - 1e-5 and aspect.max() <= 4 / 3 + 1e-5
    # log-uniform aspect: its log has mean ~0 (the tries that fit favour no side)
    assert abs(aspect.log().mean()) < 0.01
    # every box lies inside the image
    assert ((cx.abs() + w) <= 1 + 1e-6).all() and ((cy.abs() + h) <= 1 + 1e-6).all()
    assert fallback.float().mean() < 0.05


def test_scale_one_has_no_box_that_fits_but_the_whole_image():
    # area 1 with aspect != 1 never fits a square image: torchvision falls back to the whole
    # image, and so must we (otherwise "no crop" would still stretch the image)
    torch.manual_seed(0)
    x = _image()
    out = random_resized_crop_flip(x, 28, (1.0, 1.0), flip_p=0.0)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_each_sample_its_own_box_and_same_device_dtype():
    torch.manual_seed(1)
    x = _image(1).expand(16, 1, 28, 28)
    out = random_resized_crop_flip(x, 20, (0.2, 1.0))
    assert out.shape == (16, 1, 20, 20) and out.dtype == x.dtype
    assert len({round(float(v), 4) for v in out.mean(dim=(1, 2, 3))}) > 8
    assert math.isfinite(float(out.sum()))
