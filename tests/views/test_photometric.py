import kornia
import pytest
import torch
import torchvision.transforms.functional as TF

from selfsup.views.photometric import adjust_brightness_contrast, brightness_contrast, solarize


def test_matches_torchvision_brightness_then_contrast():
    x = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    b = torch.tensor([0.6, 1.0, 1.3, 1.4]).view(4, 1, 1, 1)
    c = torch.tensor([0.7, 1.2, 1.0, 0.6]).view(4, 1, 1, 1)
    out = adjust_brightness_contrast(x.clone(), b, c)
    for i in range(4):
        ref = TF.adjust_contrast(TF.adjust_brightness(x[i], float(b[i])), float(c[i]))
        torch.testing.assert_close(out[i], ref, atol=1e-6, rtol=0)


def test_hand_computed_pixel_values():
    # image [0.2, 0.6]: brightness 1.5 -> [0.3, 0.9], mean 0.6; contrast 2 -> [0.0, 1.2 -> 1.0]
    x = torch.tensor([0.2, 0.6]).view(1, 1, 1, 2)
    out = adjust_brightness_contrast(x, torch.tensor(1.5).view(1, 1, 1, 1),
                                     torch.tensor(2.0).view(1, 1, 1, 1))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 1.0]))


def test_probability_and_factor_ranges():
    torch.manual_seed(0)
    x = torch.full((4000, 1, 2, 2), 0.5)
    x[:, :, 0, 0] = 0.25  # some contrast to change
    out = brightness_contrast(x, 0.4, 0.4, p=0.8)
    changed = (out - x).abs().flatten(1).amax(1) > 1e-6
    assert abs(changed.float().mean() - 0.8) < 0.03
    ratio = out[:, 0, 0, 1] / x[:, 0, 0, 1]  # brightness moves this pixel, contrast too
    assert ratio.min() > 0.6 * 0.6 - 1e-6 and ratio.max() < 1.4 * 1.4 + 1e-6
    assert brightness_contrast(x, 0.4, 0.4, p=0.0).equal(x)


def test_solarize_hand_computed_and_as_kornia():
    x = torch.tensor([0.0, 0.2, 0.5, 0.8, 1.0]).view(1, 1, 1, 5)
    # at or above 0.5 -> 1 - x
    torch.testing.assert_close(solarize(x, p=1.0), torch.tensor([0.0, 0.2, 0.5, 0.2, 0.0]
                                                                ).view(1, 1, 1, 5))
    assert torch.equal(solarize(x, p=0.0), x)
    rgb = torch.rand(4, 3, 9, 9)
    torch.testing.assert_close(solarize(rgb, p=1.0), kornia.enhance.solarize(rgb, 0.5))


def test_solarize_per_sample_probability():
    torch.manual_seed(0)
    x = torch.rand(4000, 3, 4, 4) * 0.5 + 0.5  # every pixel >= 0.5: a solarized sample changes
    out = solarize(x, p=0.2)
    changed = (out != x).flatten(1)  # (B, 48)
    assert bool((changed.all(1) | ~changed.any(1)).all())  # a whole sample or none of it
    assert changed.all(1).float().mean().item() == pytest.approx(0.2, abs=0.02)
