from __future__ import annotations

import math

import pytest
import torch

from selfsup.objectives import NTXent


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """SimCLR eq. (1) written out one scalar at a time, slow and obvious."""
    n = z1.shape[0]
    z = [z1[i] for i in range(n)] + [z2[i] for i in range(n)]  # 2N vectors, view 1 then view 2

    def sim(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u * v).sum() / (u.norm() * v.norm())

    total = torch.zeros((), dtype=z1.dtype)
    for i in range(2 * n):
        j = (i + n) % (2 * n)  # the other view of the same sample
        denominator = sum(torch.exp(sim(z[i], z[k]) / tau) for k in range(2 * n) if k != i)
        total = total - torch.log(torch.exp(sim(z[i], z[j]) / tau) / denominator)
    return total / (2 * n)


def loss_and_grads(loss_fn, z1, z2):
    z1, z2 = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    loss = loss_fn(z1, z2)
    g1, g2 = torch.autograd.grad(loss, (z1, z2))
    return loss.detach(), g1, g2


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_matches_slow_reference_in_loss_and_gradients(tau):
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    z2 = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    got = loss_and_grads(NTXent(temperature=tau), z1, z2)
    want = loss_and_grads(lambda a, b: nt_xent_reference(a, b, tau), z1, z2)
    assert got[0].dtype == torch.float64
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=0)


def test_hand_computed_value():
    # z1 = z2 = [[1, 0], [0, 1]], tau = 1. Each of the 4 anchors has its positive at cosine 1
    # and two negatives (the other sample in both views) at cosine 0, so every anchor's loss is
    # -log(e^1 / (e^1 + e^0 + e^0)) = log((e + 2) / e) = log(1 + 2/e) ~= 0.551445.
    # Scaling the second view by 3 changes nothing: the similarity is a cosine.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert NTXent(temperature=1.0)(z, 3 * z).item() == pytest.approx(math.log(1 + 2 / math.e))
    # tau = 0.5 doubles every logit: log(1 + 2 / e^2) ~= 0.239624.
    assert NTXent(temperature=0.5)(z, z).item() == pytest.approx(math.log(1 + 2 / math.e**2))


def test_invariant_to_input_scale():
    gen = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(8, 4, generator=gen), torch.randn(8, 4, generator=gen)
    loss = NTXent()
    torch.testing.assert_close(loss(7.5 * z1, 0.01 * z2), loss(z1, z2))


def test_aligned_pairs_cost_less_than_random_pairs():
    gen = torch.Generator().manual_seed(2)
    z1 = torch.randn(16, 8, generator=gen)
    aligned = z1 + 0.05 * torch.randn(16, 8, generator=gen)
    unrelated = torch.randn(16, 8, generator=gen)
    loss = NTXent()
    assert loss(z1, aligned) < loss(z1, unrelated)


@pytest.mark.parametrize("tau", [0.0, -0.1])
def test_rejects_non_positive_temperature(tau):
    with pytest.raises(ValueError, match="temperature"):
        NTXent(temperature=tau)


def test_one_rank_group_is_exactly_the_plain_path(one_rank_group):
    gen = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    plain = loss_and_grads(NTXent(), z1, z2)
    with one_rank_group():
        grouped = loss_and_grads(NTXent(), z1, z2)
    for p, g in zip(plain, grouped, strict=True):
        assert torch.equal(p, g)
