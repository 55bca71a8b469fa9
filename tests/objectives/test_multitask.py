import math

import pytest
import torch

from selfsup.objectives.multitask import UncertaintyWeighting


def reference(losses, sigmas):
    """Sara-Ahmed/SiT (v1) main.py ``uncertaintyLoss`` per task, summed as its engine does."""
    return sum(0.5 / s**2 * loss + math.log(1 + s**2) for loss, s in zip(losses, sigmas,
                                                                         strict=True))


def test_matches_the_per_task_sum_and_a_hand_value():
    weighting = UncertaintyWeighting(3)
    with torch.no_grad():
        weighting.sigma.copy_(torch.tensor([0.5, 1.0, 2.0]))
    losses = [torch.tensor(1.3), torch.tensor(0.2), torch.tensor(4.0)]
    got = weighting(losses).item()
    assert got == pytest.approx(reference([1.3, 0.2, 4.0], [0.5, 1.0, 2.0]), abs=1e-5)
    # at the initial sigma = 1: half of each loss plus log 2 per task
    assert UncertaintyWeighting(2)([torch.tensor(2.0), torch.tensor(4.0)]).item() == (
        pytest.approx(3.0 + 2 * math.log(2), rel=1e-6))


def test_sigma_gradient():
    # d/dsigma [0.5 L / sigma^2 + log(1 + sigma^2)] = -L / sigma^3 + 2 sigma / (1 + sigma^2)
    weighting = UncertaintyWeighting(2)
    weighting([torch.tensor(3.0), torch.tensor(0.5)]).backward()
    torch.testing.assert_close(weighting.sigma.grad, torch.tensor([-3.0 + 1.0, -0.5 + 1.0]))


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="task"):
        UncertaintyWeighting(0)
    with pytest.raises(ValueError, match="2 scalar"):
        UncertaintyWeighting(2)([torch.tensor(1.0)])
    with pytest.raises(ValueError, match="2 scalar"):
        UncertaintyWeighting(2)([torch.tensor(1.0), torch.ones(3)])
