import math

import kornia.enhance as KE
import pytest
import torch
import torch.nn.functional as F

from selfsup.views.random_field import (
    color_with_fields,
    gaussian_random_field,
    random_field_color,
    random_field_warp,
    sample_parameter_fields,
    warp_with_fields,
)

WARP = {"rotation": 0.3, "log_scale": 0.2, "shear": 0.25, "translation": 0.1}


def _image(b: int = 3, c: int = 3, h: int = 12, w: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _neighbour_correlation(f: torch.Tensor) -> float:
    # lag-1 correlation along x, pooled over samples and positions (fields have mean 0, std 1)
    return float((f[..., 1:] * f[..., :-1]).mean() / f.pow(2).mean())


def test_zero_amplitude_is_the_identity():
    x = _image()
    assert random_field_warp(x, dict.fromkeys(WARP, 0.0), 4.0, _gen()) is x
    assert random_field_color(x, 0.0, 0.0, 0.0, 4.0, _gen()) is x
    # zero fields still go through the grid and the HSV round trip: pixel centres with
    # align_corners=False land exactly on the input pixels
    zero = torch.zeros(3, 12, 20)
    names = ("rotation", "log_scale", "shear", "translate_x", "translate_y")
    warp_zero = dict.fromkeys(names, zero)
    torch.testing.assert_close(warp_with_fields(x, warp_zero), x, atol=1e-5, rtol=0)
    color_zero = dict.fromkeys(("brightness", "hue", "saturation"), zero)
    torch.testing.assert_close(color_with_fields(x, color_zero), x, atol=1e-5, rtol=0)


def test_infinite_correlation_length_gives_a_constant_field():
    f = gaussian_random_field(5, (6, 9), math.inf, _gen())
    assert f.shape == (5, 6, 9)
    assert torch.equal(f, f[:, :1, :1].expand_as(f))
    assert f[:, 0, 0].std() > 0  # one independent value per sample


def test_infinite_correlation_warp_is_one_global_affine_transform():
    # On a non-square image: the sampling map is D^-1 R S Sh D p + 2 t with D = diag(W, H) / 2,
    # built here from the matrices and handed to F.affine_grid
    x = _image()
    b, _, h, w = x.shape
    fields = sample_parameter_fields(b, (h, w), {"rotation": 0.4, "log_scale": 0.2, "shear": 0.3,
                                                 "translate_x": 0.1, "translate_y": 0.1},
                                     math.inf, _gen(3))
    assert all(torch.equal(f, f[:, :1, :1].expand_as(f)) for f in fields.values())
    p = {name: f[:, 0, 0] for name, f in fields.items()}  # (B,) each
    cos, sin = p["rotation"].cos(), p["rotation"].sin()
    rotate = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)
    zoom = p["log_scale"].exp()[:, None, None] * torch.eye(2)
    shear = torch.eye(2).repeat(b, 1, 1)
    shear[:, 0, 1] = p["shear"]
    d = torch.diag(torch.tensor([w / 2, h / 2]))
    linear = torch.linalg.inv(d) @ rotate @ zoom @ shear @ d  # (B, 2, 2)
    shift = 2 * torch.stack((p["translate_x"], p["translate_y"]), -1)[..., None]  # (B, 2, 1)
    grid = F.affine_grid(torch.cat((linear, shift), -1), list(x.shape), align_corners=False)
    want = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(warp_with_fields(x, fields), want, atol=1e-5, rtol=0)
    # the random entry point draws exactly these fields from the same generator state
    got = random_field_warp(x, {"rotation": 0.4, "log_scale": 0.2, "shear": 0.3,
                                "translation": 0.1}, math.inf, _gen(3))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_translation_is_a_fraction_of_the_image_and_rotation_is_rigid():
    x = _image(2, 1, 16, 16)
    quarter = torch.full((2, 16, 16), 0.25)  # of the width: 4 pixels
    shifted = warp_with_fields(x, {"translate_x": quarter})
    torch.testing.assert_close(shifted[..., :12], x[..., 4:], atol=1e-5, rtol=0)
    assert shifted[..., 12:].abs().max() < 1e-5  # sampled outside: zero padding
    # a quarter turn of a square grid of pixel centres is a permutation of them
    turned = warp_with_fields(x, {"rotation": torch.full((2, 16, 16), math.pi / 2)})
    torch.testing.assert_close(turned, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_infinite_correlation_color_is_a_global_brightness_hue_saturation_shift():
    x = _image(4, 3, 8, 10)
    fields = sample_parameter_fields(4, (8, 10), {"brightness": 0.2, "hue": 0.5,
                                                  "saturation": 0.4}, math.inf, _gen(1))
    p = {name: f[:, 0, 0] for name, f in fields.items()}
    want = KE.adjust_hue(x, p["hue"])
    want = KE.adjust_saturation(want, p["saturation"].exp())
    want = KE.adjust_brightness(want, p["brightness"])
    torch.testing.assert_close(color_with_fields(x, fields), want, atol=1e-5, rtol=0)
    got = random_field_color(x, 0.2, 0.5, 0.4, math.inf, _gen(1))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # one channel: brightness only, kornia's additive shift
    gray = x[:, :1]
    shift = sample_parameter_fields(4, (8, 10), {"brightness": 0.3}, math.inf, _gen(2))
    torch.testing.assert_close(color_with_fields(gray, shift),
                               KE.adjust_brightness(gray, shift["brightness"][:, 0, 0]),
                               atol=1e-6, rtol=0)


def test_field_has_unit_marginal_std_at_every_pixel():
    f = gaussian_random_field(2000, (10, 12), 2.5, _gen())
    assert abs(float(f.mean())) < 0.03
    assert abs(float(f.std()) - 1) < 0.02
    per_pixel = f.std(dim=0)  # (H, W): corners and centre alike, no border effect
    assert (per_pixel - 1).abs().max() < 0.08


def test_longer_correlation_length_gives_smoother_fields():
    # neighbour correlation is exp(-1 / (4 l^2)): 0, 0.78, 0.94, 0.98 for l = 0, 1, 2, 4
    lengths = [0.0, 1.0, 2.0, 4.0]
    rho = [_neighbour_correlation(gaussian_random_field(400, 16, ell, _gen(7)))
           for ell in lengths]
    assert all(a < b for a, b in zip(rho, rho[1:], strict=False))
    for ell, r in zip(lengths, rho, strict=True):
        want = 0.0 if ell == 0 else math.exp(-1 / (4 * ell**2))
        assert abs(r - want) < 0.03, (ell, r, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_views_keep_shape_dtype_range_and_differ_per_sample(dtype):
    x = _image(1, 3, 16, 16).expand(6, 3, 16, 16).to(dtype)
    warped = random_field_warp(x, WARP, 4.0, _gen(0))
    colored = random_field_color(x, 0.2, 0.3, 0.3, 4.0, _gen(0))
    gray = random_field_color(x[:, :1], 0.2, 0.0, 0.0, 4.0, _gen(0))
    for out, like in ((warped, x), (colored, x), (gray, x[:, :1])):
        assert out.shape == like.shape and out.dtype == dtype
        assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
        assert not torch.allclose(out, like)
        assert len({round(float(v), 4) for v in out.mean(dim=(1, 2, 3))}) == 6
    # the same generator state gives the same views
    assert torch.equal(random_field_warp(x, WARP, 4.0, _gen(0)), warped)


def test_finite_correlation_length_varies_parameters_across_the_image():
    fields = sample_parameter_fields(4, 16, {"rotation": 0.3}, 3.0, _gen(), random_mean=False)
    rotation = fields["rotation"]  # (B, H, W)
    assert rotation.std(dim=(1, 2)).min() > 0.01  # local, not one global angle
    assert rotation.mean(dim=(1, 2)).abs().max() < 0.5


def test_bad_arguments_name_the_valid_choices():
    x = _image()
    with pytest.raises(ValueError, match="valid: \\['rotation'"):
        random_field_warp(x, {"rotate": 0.1}, 4.0)
    with pytest.raises(ValueError, match="need RGB"):
        random_field_color(x[:, :1], 0.1, 0.2, 0.0, 4.0)
    with pytest.raises(ValueError, match="correlation_length"):
        gaussian_random_field(2, 8, -1.0)
    with pytest.raises(ValueError, match="non-negative"):
        random_field_warp(x, {"shear": -0.1}, 4.0)
