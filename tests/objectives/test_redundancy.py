from __future__ import annotations

import pytest
import torch

from selfsup.objectives import BarlowTwins


def barlow_twins_reference(
    z1: torch.Tensor, z2: torch.Tensor, lambda_: float, eps: float
) -> torch.Tensor:
    """Barlow Twins eq. (1)-(2) written out one scalar at a time, slow and obvious."""
    b, d = z1.shape

    def standardize(z: torch.Tensor) -> list[list[torch.Tensor]]:  # [feature][sample]
        columns = []
        for i in range(d):
            mean = sum(z[s, i] for s in range(b)) / b
            var = sum((z[s, i] - mean) ** 2 for s in range(b)) / b  # biased, as BatchNorm
            columns.append([(z[s, i] - mean) / torch.sqrt(var + eps) for s in range(b)])
        return columns

    zn1, zn2 = standardize(z1), standardize(z2)
    loss = torch.zeros((), dtype=z1.dtype)
    for i in range(d):
        for j in range(d):
            c_ij = sum(zn1[i][s] * zn2[j][s] for s in range(b)) / b
            loss = loss + ((1 - c_ij) ** 2 if i == j else lambda_ * c_ij**2)
    return loss


def loss_and_grads(loss_fn, z1, z2):
    z1, z2 = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    loss = loss_fn(z1, z2)
    g1, g2 = torch.autograd.grad(loss, (z1, z2))
    return loss.detach(), g1, g2


@pytest.mark.parametrize(("lambda_", "eps"), [(0.0051, 1e-5), (0.5, 0.1)])
def test_matches_slow_reference_in_loss_and_gradients(lambda_, eps):
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 5, generator=gen, dtype=torch.float64) * 2 + 1
    z2 = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    got = loss_and_grads(BarlowTwins(lambda_=lambda_, eps=eps), z1, z2)
    want = loss_and_grads(lambda a, b: barlow_twins_reference(a, b, lambda_, eps), z1, z2)
    assert got[0].dtype == torch.float64
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=0)


def test_hand_computed_values():
    # B = 4, eps = 0. Column a = [4, 2, 4, 2] has mean 3 and biased variance 1, so it
    # standardizes to u = [1, -1, 1, -1]; column c = [1, 1, -1, -1] is already v. u.u/4 =
    # v.v/4 = 1 and u.v/4 = 0.
    a = torch.tensor([4.0, 2.0, 4.0, 2.0], dtype=torch.float64)
    c = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    loss = BarlowTwins(lambda_=0.5, eps=0.0)
    # z1 = [a, c], z2 = [a, a]: C = [[u.u, u.u], [v.u, v.u]] / 4 = [[1, 1], [0, 0]].
    # On the diagonal (1 - 1)^2 + (1 - 0)^2 = 1; off it 0.5 * (1^2 + 0^2) = 0.5; total 1.5.
    assert loss(torch.stack((a, c), 1), torch.stack((a, a), 1)).item() == pytest.approx(1.5)
    # z1 = z2 = [a, -a], two perfectly anti-correlated features: C = [[1, -1], [-1, 1]].
    # The diagonal costs 0; off it 0.5 * ((-1)^2 + (-1)^2) = 1.
    z = torch.stack((a, -a), 1)
    assert loss(z, z).item() == pytest.approx(1.0)


def test_identical_views_have_no_invariance_term():
    # With lambda = 0 only sum_i (1 - C_ii)^2 remains; z1 == z2 makes C_ii = var / (var + eps).
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(32, 8, generator=gen, dtype=torch.float64)
    assert BarlowTwins(lambda_=0.0)(z, z).item() < 1e-8
    assert BarlowTwins(lambda_=0.0, eps=0.0)(z, z).item() == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize(("lambda_", "eps"), [(-0.1, 1e-5), (0.005, -1.0)])
def test_rejects_negative_weights(lambda_, eps):
    with pytest.raises(ValueError, match="non-negative"):
        BarlowTwins(lambda_=lambda_, eps=eps)


def test_one_rank_group_is_exactly_the_plain_path(one_rank_group):
    gen = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    plain = loss_and_grads(BarlowTwins(), z1, z2)
    with one_rank_group():
        grouped = loss_and_grads(BarlowTwins(), z1, z2)
    for p, g in zip(plain, grouped, strict=True):
        assert torch.equal(p, g)
