"""Noise2Void's loss against a loop over the blind spots and a value by hand."""

import pytest
import torch

from selfsup.objectives.restoration import BlindSpotMSE


def test_blind_spot_mse_by_hand():
    noisy = torch.zeros(1, 2, 2, 2)
    predicted = torch.tensor([[[[1.0, 9.0], [9.0, 9.0]], [[3.0, 9.0], [9.0, 9.0]]]])
    mask = torch.tensor([[[True, False], [False, False]]])
    # one blind spot, two channels: (1^2 + 3^2) / 2 = 5; the unmasked 9s count for nothing
    assert BlindSpotMSE()(predicted, noisy, mask).item() == pytest.approx(5.0)


def test_blind_spot_mse_against_a_loop_and_its_gradient():
    g = torch.Generator().manual_seed(0)
    predicted = torch.randn(3, 2, 6, 5, generator=g, requires_grad=True)
    noisy = torch.randn(3, 2, 6, 5, generator=g)
    mask = torch.rand(3, 6, 5, generator=g) < 0.2
    terms = [(predicted[b, c, i, j] - noisy[b, c, i, j]) ** 2
             for b, i, j in mask.nonzero().tolist() for c in range(2)]
    loss = BlindSpotMSE()(predicted, noisy, mask)
    assert loss.item() == pytest.approx(float(sum(terms).detach()) / len(terms), rel=1e-6)
    loss.backward()
    assert torch.all(predicted.grad[~mask.unsqueeze(1).expand_as(noisy)] == 0)


def test_blind_spot_mse_refuses_what_it_cannot_score():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="no blind-spot pixel"):
        BlindSpotMSE()(x, x, torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="do not match"):
        BlindSpotMSE()(x, x, torch.zeros(1, 3, 4, dtype=torch.bool))
