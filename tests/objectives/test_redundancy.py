from __future__ import annotations

import pytest
import torch

from selfsup.objectives import BarlowTwins
from selfsup.objectives.redundancy import MixedBarlowTwinsRegularizer, mix_inputs


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


def mixed_barlow_twins_reference(z_a, z_b, z_m, perm, alpha, lambda_, scale):
    """The regularizer of github.com/wgcban/mix-bt ``main.py``, ``train`` (the "MixUp (Our
    Contribution)" block), line by line, one scalar at a time: out_norm = (out - mean) / std with
    the unbiased std and no epsilon, the six products divided by the batch size, then
    scale * lambda * (sum (cc_m_1 - cc_m_1_gt)^2 + sum (cc_m_2 - cc_m_2_gt)^2)."""
    b, d = z_a.shape

    def normalize(z):  # [sample][feature]
        out = [[None] * d for _ in range(b)]
        for i in range(d):
            mean = sum(z[s, i] for s in range(b)) / b
            std = torch.sqrt(sum((z[s, i] - mean) ** 2 for s in range(b)) / (b - 1))
            for s in range(b):
                out[s][i] = (z[s, i] - mean) / std
        return out

    def product(u, v):  # u^T v / b, as a [feature][feature] table
        return [[sum(u[s][i] * v[s][j] for s in range(b)) / b for j in range(d)]
                for i in range(d)]

    out_1, out_2, out_m = normalize(z_a), normalize(z_b), normalize(z_m)
    out_2_perm = [out_2[int(perm[s])] for s in range(b)]
    cc_m_1, cc_m_2 = product(out_m, out_1), product(out_m, out_2)
    a_11, p_21 = product(out_1, out_1), product(out_2_perm, out_1)
    a_12, p_22 = product(out_1, out_2), product(out_2_perm, out_2)
    total = torch.zeros((), dtype=z_a.dtype)
    for i in range(d):
        for j in range(d):
            gt_1 = alpha * a_11[i][j] + (1 - alpha) * p_21[i][j]
            gt_2 = alpha * a_12[i][j] + (1 - alpha) * p_22[i][j]
            total = total + (cc_m_1[i][j] - gt_1) ** 2 + (cc_m_2[i][j] - gt_2) ** 2
    return scale * lambda_ * total


def _mixed_views(b=7, d=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z_a = torch.randn(b, d, generator=gen, dtype=torch.float64) * 2 + 1
    z_b = torch.randn(b, d, generator=gen, dtype=torch.float64) - 0.5
    z_m = torch.randn(b, d, generator=gen, dtype=torch.float64) * 0.5 + 0.3 * z_a
    perm = torch.randperm(b, generator=gen)
    return z_a, z_b, z_m, perm


def _standardized(z):
    return (z - z.mean(0)) / z.std(0)  # unbiased, as the official code


@pytest.mark.parametrize(("lambda_", "scale", "alpha"), [(0.0078125, 4.0, 0.3), (0.5, 1.0, 0.9)])
def test_mixed_regularizer_matches_official_lines_in_value_and_gradients(lambda_, scale, alpha):
    z_a, z_b, z_m, perm = _mixed_views()
    leaves = [z.clone().requires_grad_() for z in (z_a, z_b, z_m)]
    got = MixedBarlowTwinsRegularizer(lambda_, scale)(*leaves, perm, alpha)
    got_grads = torch.autograd.grad(got, leaves)
    ref_leaves = [z.clone().requires_grad_() for z in (z_a, z_b, z_m)]
    want = mixed_barlow_twins_reference(*ref_leaves, perm, alpha, lambda_, scale)
    want_grads = torch.autograd.grad(want, ref_leaves)
    assert got.dtype == torch.float64 and want.item() > 1e-3
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # the targets are not detached, so z_a and z_b get gradients through both sides, as upstream
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=0)


def test_mixed_regularizer_hand_computed_value():
    # B = 2, D = 1: any two distinct values standardize (unbiased std) to +-[1, -1] / sqrt(2),
    # so every product u^T v / B is +-1/2. z_a = [1, 3] -> u_a = [-1, 1] / sqrt(2);
    # z_b = [5, 1] -> u_b = -u_a; z_m = [0, 2] -> u_m = u_a; perm = identity; alpha = 1/4.
    # C_ma = 1/2, G_ma = 1/4 * 1/2 + 3/4 * (-1/2) = -1/4: gap 3/4.
    # C_mb = -1/2, G_mb = 1/4 * (-1/2) + 3/4 * 1/2 = 1/4: gap -3/4.
    # R = s * lambda * (9/16 + 9/16) = 4 * 0.5 * 9/8 = 2.25. (A biased std would give 4x.)
    z_a = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    z_b = torch.tensor([[5.0], [1.0]], dtype=torch.float64)
    z_m = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
    reg = MixedBarlowTwinsRegularizer(lambda_=0.5, scale=4.0)
    assert reg(z_a, z_b, z_m, torch.tensor([0, 1]), 0.25).item() == pytest.approx(2.25)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_mixed_regularizer_is_zero_at_the_ends_of_the_mixing_range(alpha):
    # alpha = 1 mixes nothing in: x_m = x_a, and any z_m that standardizes to u_a (a positive
    # scale and shift of z_a per feature) meets the target exactly; alpha = 0 likewise with
    # z_b[perm], since standardizing over the batch commutes with permuting it.
    z_a, z_b, _, perm = _mixed_views()
    z_m = 3 * z_a + 2 if alpha == 1.0 else 0.5 * z_b[perm] - 1
    reg = MixedBarlowTwinsRegularizer(lambda_=1.0, scale=1.0)
    assert reg(z_a, z_b, z_m, perm, alpha).item() == pytest.approx(0.0, abs=1e-12)


def test_mixed_regularizer_is_zero_when_the_mixture_keeps_unit_variance():
    # The exact condition for R = 0: the standardized mixed projection u_m differs from the mixture
    # w = alpha u_a + (1 - alpha) u_b[perm] only by a part r uncorrelated with every feature of
    # both views. w has mean 0 but std < 1, so take r orthogonal to the constant and to all
    # columns of u_a, u_b and u_b[perm] (hence to w), with exactly the missing variance:
    # z_m = w + r is then already standardized (it is its own u_m), and u_m^T u_a = w^T u_a,
    # u_m^T u_b = w^T u_b. This needs B > 3 D + 1.
    b, d, alpha = 16, 3, 0.3
    z_a, z_b, _, perm = _mixed_views(b, d)
    u_a, u_b = _standardized(z_a), _standardized(z_b)
    w = alpha * u_a + (1 - alpha) * u_b[perm]  # (B, D)
    basis, _ = torch.linalg.qr(torch.cat((torch.ones(b, 1, dtype=w.dtype), u_a, u_b, u_b[perm]), 1))
    noise = torch.randn(b, d, generator=torch.Generator().manual_seed(5), dtype=w.dtype)
    r = noise - basis @ (basis.T @ noise)  # (B, D), orthogonal to all of them
    missing = (b - 1) - w.pow(2).sum(0)  # each column of a standardized z has |.|^2 = B - 1
    assert (missing > 0.1).all()
    z_m = w + r * (missing / r.pow(2).sum(0)).sqrt()
    torch.testing.assert_close(_standardized(z_m), z_m, atol=1e-12, rtol=0)
    reg = MixedBarlowTwinsRegularizer(lambda_=1.0, scale=1.0)
    assert reg(z_a, z_b, z_m, perm, alpha).item() == pytest.approx(0.0, abs=1e-6)
    # ...and the plain mixture z_m = w is not a zero: standardization rescales each feature j by
    # 1 / std_j(w), leaving the gap (1 / std_j - 1) * w_j^T u / B in row j.
    std = w.std(0)  # (D,)
    gap_a = (1 / std - 1)[:, None] * (w.T @ u_a) / b  # (D, D)
    gap_b = (1 / std - 1)[:, None] * (w.T @ u_b) / b
    closed_form = gap_a.pow(2).sum() + gap_b.pow(2).sum()
    got = reg(z_a, z_b, w, perm, alpha)
    assert got.item() > 1e-3
    torch.testing.assert_close(got, closed_form, atol=1e-10, rtol=0)


def test_mixed_regularizer_defaults_are_the_official_cifar10_recipe():
    reg = MixedBarlowTwinsRegularizer()
    assert (reg.lambda_, reg.scale, reg.eps) == (0.0078125, 4.0, 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        MixedBarlowTwinsRegularizer(scale=-1.0)
    z = torch.randn(4, 2)
    with pytest.raises(ValueError, match="perm"):
        reg(z, z, z, torch.arange(3), 0.5)


def test_mixed_regularizer_one_rank_group_is_exactly_the_plain_path(one_rank_group):
    z_a, z_b, z_m, perm = (t.float() if t.is_floating_point() else t for t in _mixed_views())
    plain = MixedBarlowTwinsRegularizer()(z_a, z_b, z_m, perm, 0.4)
    with one_rank_group():
        grouped = MixedBarlowTwinsRegularizer()(z_a, z_b, z_m, perm, 0.4)
    assert torch.equal(plain, grouped)


def test_mix_inputs_mixes_with_one_alpha_and_a_permutation():
    gen = torch.Generator().manual_seed(0)
    x_a, x_b = torch.rand(8, 1, 4, 4, generator=gen), torch.rand(8, 1, 4, 4, generator=gen)
    x_m, alpha, perm = mix_inputs(x_a, x_b, generator=torch.Generator().manual_seed(1))
    assert isinstance(alpha, float) and 0.0 <= alpha <= 1.0
    assert perm.dtype == torch.int64 and sorted(perm.tolist()) == list(range(8))
    torch.testing.assert_close(x_m, alpha * x_a + (1 - alpha) * x_b[perm])
    again = mix_inputs(x_a, x_b, generator=torch.Generator().manual_seed(1))
    assert again[1] == alpha and torch.equal(again[2], perm)
    # Beta(1, 1) is uniform on [0, 1]: mean 1/2, variance 1/12
    alphas = torch.tensor([mix_inputs(x_a, x_b, generator=gen)[1] for _ in range(2000)])
    assert abs(alphas.mean() - 0.5) < 0.03 and abs(alphas.var() - 1 / 12) < 0.01
