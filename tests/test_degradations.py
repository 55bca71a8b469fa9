"""Degradations (selfsup/degradations.py): the spec syntax, each noise model's statistics against
its formula, and test-set noise seeded per image."""

import math

import pytest
import torch

from selfsup.degradations import (
    Gaussian,
    PoissonGaussian,
    degrade_seeded,
    image_generator,
    parse_degradation,
)


def test_specs_parse_and_print_back():
    assert parse_degradation("gaussian:25") == Gaussian(25.0)
    assert parse_degradation(" poisson-gaussian:30, 5 ") == PoissonGaussian(30.0, 5.0)
    assert parse_degradation("poisson-gaussian:30") == PoissonGaussian(30.0, 0.0)
    for spec in ("gaussian:25", "poisson-gaussian:30,5"):
        assert parse_degradation(spec).spec == spec


@pytest.mark.parametrize("spec, message", [
    ("gauss:25", "not understood; valid: gaussian:SIGMA"),
    ("gaussian", "not understood"),
    ("gaussian:abc", "not understood"),
    ("gaussian:1,2", "wrong number of values; valid: gaussian:SIGMA"),
    ("gaussian:-5", "sigma >= 0"),
    ("poisson-gaussian:0,5", "peak > 0"),
])
def test_bad_specs_are_one_clear_error(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_degradation(spec)


def test_gaussian_adds_sigma_on_the_255_scale_unclipped():
    x = torch.full((1, 256, 256), 0.02)
    y = Gaussian(25)(x, torch.Generator().manual_seed(0))
    noise = y - x
    assert abs(noise.mean().item()) < 1e-3
    assert noise.std().item() == pytest.approx(25 / 255, rel=0.01)  # 0.0980
    assert y.min() < 0  # nothing clipped: near black, noise goes below 0
    # by hand, one value: x plus sigma/255 times the generator's normal draw
    one = Gaussian(25)(torch.tensor([[[0.02]]]), torch.Generator().manual_seed(0))
    draw = torch.randn(1, generator=torch.Generator().manual_seed(0)).item()  # 1.5410
    assert one.item() == pytest.approx(0.02 + 25 / 255 * draw, abs=1e-7)
    assert draw == pytest.approx(1.5410, abs=1e-4)


@pytest.mark.parametrize("level", [0.1, 0.5, 0.9])
def test_poisson_gaussian_variance_follows_the_model(level):
    # Var(y) = x / peak + (sigma / 255)^2; at x = 0.5, peak 30, sigma 5: 0.016667 + 0.000384
    d = PoissonGaussian(30, 5)
    y = d(torch.full((1, 300, 300), level), torch.Generator().manual_seed(1))
    expected = level / 30 + (5 / 255) ** 2
    assert y.mean().item() == pytest.approx(level, abs=2e-3)
    assert y.var().item() == pytest.approx(expected, rel=0.02)
    if level == 0.5:
        assert expected == pytest.approx(0.017051, abs=1e-6)


def test_test_noise_is_seeded_per_image_whatever_the_batch():
    images = [torch.rand(1, 8, 8), torch.rand(3, 5, 7), torch.rand(1, 8, 8)]
    whole = degrade_seeded(images, "gaussian:25", seed=3)
    again = degrade_seeded(images, "gaussian:25", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(whole, again, strict=True))
    # image 2 alone, named by its index: the same noise as in the whole set
    alone = degrade_seeded(images[2:], Gaussian(25), seed=3, indices=[2])
    assert torch.equal(alone[0], whole[2])
    # two images with equal content get different noise; another seed, other noise
    assert not torch.equal(whole[0] - images[0], whole[2] - images[2])
    assert not torch.equal(degrade_seeded(images, "gaussian:25", seed=4)[0], whole[0])
    assert [w.shape for w in whole] == [x.shape for x in images]


def test_image_generators_differ_by_seed_and_index():
    draws = {(s, i): torch.randn(4, generator=image_generator(s, i)) for s in (0, 1)
             for i in (0, 1)}
    values = [tuple(v.tolist()) for v in draws.values()]
    assert len(set(values)) == 4 and all(math.isfinite(v) for t in values for v in t)
