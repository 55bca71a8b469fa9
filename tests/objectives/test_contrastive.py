from __future__ import annotations

import math

import pytest
import torch

from selfsup.objectives import DCL, DCLW, NTXent, SupCon
from selfsup.objectives.contrastive import MomentumInfoNCE


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


# --- DCL, DCLW (Yeh et al. 2022) and SupCon (Khosla et al. 2020) -----------------------------


def cosine(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * v).sum() / (u.norm() * v.norm())


def dcl_reference(z1, z2, tau, weights=None) -> torch.Tensor:
    """Yeh et al. eq. (6) one scalar at a time; ``weights[i]`` scales sample i's positive term."""
    n = z1.shape[0]
    z = [z1[i] for i in range(n)] + [z2[i] for i in range(n)]
    total = torch.zeros((), dtype=z1.dtype)
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        w = 1.0 if weights is None else weights[i % n]
        negatives = sum(torch.exp(cosine(z[i], z[k]) / tau)
                        for k in range(2 * n) if k not in (i, j))
        total = total - w * cosine(z[i], z[j]) / tau + torch.log(negatives)
    return total / (2 * n)


def dclw_reference(z1, z2, tau, sigma) -> torch.Tensor:
    n = z1.shape[0]
    with torch.no_grad():  # the weight is a constant of the backward pass
        agreement = [torch.exp(cosine(z1[i], z2[i]) / sigma) for i in range(n)]
        mean = sum(agreement) / n
        weights = [2 - a / mean for a in agreement]
    return dcl_reference(z1, z2, tau, weights)


def supcon_reference(z1, z2, tau, labels) -> torch.Tensor:
    """Khosla et al. eq. (2), L^sup_out, one scalar at a time."""
    n = z1.shape[0]
    z = [z1[i] for i in range(n)] + [z2[i] for i in range(n)]
    y = [int(labels[i % n]) for i in range(2 * n)]
    total = torch.zeros((), dtype=z1.dtype)
    for i in range(2 * n):
        denominator = sum(torch.exp(cosine(z[i], z[a]) / tau) for a in range(2 * n) if a != i)
        positives = [p for p in range(2 * n) if p != i and y[p] == y[i]]
        total = total - sum(torch.log(torch.exp(cosine(z[i], z[p]) / tau) / denominator)
                            for p in positives) / len(positives)
    return total / (2 * n)


def random_pair(seed: int, b: int = 6, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(b, d, generator=gen, dtype=torch.float64)
    return z1, z1 + 0.7 * torch.randn(b, d, generator=gen, dtype=torch.float64)


def assert_same_loss_and_grads(got, want, atol=1e-6):
    assert got[0].dtype == torch.float64
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=atol, rtol=0)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_dcl_matches_slow_reference(tau):
    z1, z2 = random_pair(10)
    assert_same_loss_and_grads(loss_and_grads(DCL(temperature=tau), z1, z2),
                               loss_and_grads(lambda a, b: dcl_reference(a, b, tau), z1, z2))


@pytest.mark.parametrize(("tau", "sigma"), [(0.1, 0.5), (0.5, 0.2), (1.0, 2.0)])
def test_dclw_matches_slow_reference(tau, sigma):
    z1, z2 = random_pair(11)
    assert_same_loss_and_grads(
        loss_and_grads(DCLW(temperature=tau, sigma=sigma), z1, z2),
        loss_and_grads(lambda a, b: dclw_reference(a, b, tau, sigma), z1, z2))


@pytest.mark.parametrize("labels", [[0, 1, 0, 2, 1, 0], [3, 3, 3, 3, 3, 3], [0, 1, 2, 3, 4, 5]])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_supcon_matches_slow_reference(tau, labels):
    z1, z2 = random_pair(12)
    y = torch.tensor(labels)
    assert_same_loss_and_grads(
        loss_and_grads(lambda a, b: SupCon(temperature=tau)(a, b, y), z1, z2),
        loss_and_grads(lambda a, b: supcon_reference(a, b, tau, y), z1, z2))


def test_dcl_is_nt_xent_with_the_positive_out_of_the_denominator():
    # Per anchor, NT-Xent is -log p with p = e^pos / (e^pos + S) and DCL is -log(e^pos / S)
    # = -log(p / (1 - p)): DCL = NT-Xent + mean log(1 - p), p taken from NT-Xent's own softmax.
    z1, z2 = random_pair(13, b=8)
    tau, n = 0.2, 8
    z = torch.nn.functional.normalize(torch.cat((z1, z2)), dim=1)
    logits = (z @ z.T / tau).fill_diagonal_(float("-inf"))  # (2n, 2n)
    p = torch.softmax(logits, dim=1)[torch.arange(2 * n), (torch.arange(2 * n) + n) % (2 * n)]
    want = NTXent(temperature=tau)(z1, z2) + torch.log1p(-p).mean()
    torch.testing.assert_close(DCL(temperature=tau)(z1, z2), want, atol=1e-12, rtol=0)


def test_dcl_and_dclw_hand_computed_values():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # z1 = z2 = z, tau = 1: every positive at cosine 1, both negatives (the other sample, either
    # view) at cosine 0, so every anchor costs -1 + log(1 + 1).
    assert DCL(temperature=1.0)(z, z).item() == pytest.approx(math.log(2) - 1)
    assert DCL(temperature=0.5)(z, 2 * z).item() == pytest.approx(math.log(2) - 2)
    # z2 = [[1, 0], [1, 0]], tau = sigma = 1: sample 1's views agree (cos 1), sample 2's are
    # orthogonal (cos 0), so the weights are w1 = 2 - 2e / (e + 1) = 2 / (e + 1) and
    # w2 = 2e / (e + 1). Anchors: z1_1 has its positive at 1 and negatives at 0 and 1;
    # z2_1 the same; z1_2 has its positive at 0 and negatives at 0, 0; z2_2 positive at 0,
    # negatives at 1, 1. So the four anchors cost -w1 + log(1 + e) (twice), log 2, log(2e).
    e = math.e
    z2 = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    w1 = 2 / (e + 1)
    want_dclw = (2 * (-w1 + math.log(1 + e)) + math.log(2) + math.log(2 * e)) / 4
    assert DCLW(temperature=1.0, sigma=1.0)(z, z2).item() == pytest.approx(want_dclw)
    want_dcl = (2 * (-1 + math.log(1 + e)) + math.log(2) + math.log(2 * e)) / 4
    assert DCL(temperature=1.0)(z, z2).item() == pytest.approx(want_dcl)


def test_supcon_hand_computed_value():
    # z1 = z2 = [[1, 0], [0, 1]], tau = 1, both samples labelled 0: each anchor's three other
    # projections are all positives, at cosines 1, 0, 0, over the denominator e + 2, so every
    # anchor costs -(1/3) * (1 + 0 + 0 - 3 log(e + 2)) = log(e + 2) - 1/3.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    got = SupCon(temperature=1.0)(z, z, torch.tensor([0, 0]))
    assert got.item() == pytest.approx(math.log(math.e + 2) - 1 / 3)
    # Different labels leave only the other view: NT-Xent's log(1 + 2/e).
    got = SupCon(temperature=1.0)(z, z, torch.tensor([0, 1]))
    assert got.item() == pytest.approx(math.log(1 + 2 / math.e))


def test_dclw_tends_to_dcl_as_sigma_grows():
    z1, z2 = random_pair(14)
    got = loss_and_grads(DCLW(temperature=0.3, sigma=1e12), z1, z2)
    want = loss_and_grads(DCL(temperature=0.3), z1, z2)
    assert_same_loss_and_grads(got, want, atol=1e-9)
    # and a small sigma really does weigh the positives differently
    assert not torch.allclose(DCLW(temperature=0.3, sigma=0.1)(z1, z2), want[0])


@pytest.mark.parametrize("labels", [None, torch.arange(6), torch.tensor([5, 0, 9, 2, 7, 1])])
def test_supcon_without_shared_labels_is_nt_xent(labels):
    z1, z2 = random_pair(15)
    got = loss_and_grads(lambda a, b: SupCon(temperature=0.2)(a, b, labels), z1, z2)
    want = loss_and_grads(NTXent(temperature=0.2), z1, z2)
    assert_same_loss_and_grads(got, want, atol=1e-12)


def test_supcon_rejects_bad_labels():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="labels"):
        SupCon()(z, z, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        SupCon()(z, z, torch.zeros(4))


@pytest.mark.parametrize("make", [DCL, SupCon, lambda **kw: DCLW(sigma=1.0, **kw)])
@pytest.mark.parametrize("tau", [0.0, -1.0])
def test_new_losses_reject_non_positive_temperature(make, tau):
    with pytest.raises(ValueError, match="temperature"):
        make(temperature=tau)


def test_dclw_rejects_non_positive_sigma():
    with pytest.raises(ValueError, match="sigma"):
        DCLW(sigma=0.0)


def labelled_supcon(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    return SupCon()(z1, z2, torch.tensor([0, 1, 0, 2, 1, 0]))


@pytest.mark.parametrize("make", [DCL, DCLW, SupCon, lambda: labelled_supcon])
def test_new_losses_one_rank_group_is_exactly_the_plain_path(one_rank_group, make):
    z1, z2 = random_pair(16)
    plain = loss_and_grads(make(), z1, z2)
    with one_rank_group():
        grouped = loss_and_grads(make(), z1, z2)
    for p, g in zip(plain, grouped, strict=True):
        assert torch.equal(p, g)


def momentum_info_nce_reference(q, k, tau):
    """MoCo v3's ctr(q, k) one query at a time, as Sara-Ahmed/SiT main.py
    ``SimCLR.contrastive_loss`` computes it: normalize, logits q.k / tau over every key,
    cross-entropy towards the query's own key, times 2 tau."""
    n = q.shape[0]

    def unit(v):
        return v / v.norm()

    total = 0.0
    for i in range(n):
        logits = [float(unit(q[i]) @ unit(k[j])) / tau for j in range(n)]
        total -= logits[i] - math.log(sum(math.exp(x) for x in logits))
    return 2 * tau * total / n


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_momentum_info_nce_matches_the_loop(tau):
    q, k = random_pair(21, b=6)
    ours = MomentumInfoNCE(tau)(q.float(), k.float())
    assert ours.item() == pytest.approx(momentum_info_nce_reference(q, k, tau), abs=1e-5)


def test_momentum_info_nce_hand_computed_and_keys_without_gradient():
    # q = k = the two unit vectors, tau = 1: each query scores (1, 0), costs log(1 + e^-1)
    eye = torch.eye(2)
    want = 2 * math.log(1 + math.exp(-1))
    assert MomentumInfoNCE(1.0)(eye, eye).item() == pytest.approx(want, rel=1e-6)
    q, k = eye.clone().requires_grad_(), eye.clone().requires_grad_()
    MomentumInfoNCE(1.0)(q, k).backward()
    assert q.grad is not None and k.grad is None
    with pytest.raises(ValueError, match="temperature"):
        MomentumInfoNCE(0.0)
    with pytest.raises(ValueError, match="shape"):
        MomentumInfoNCE()(torch.zeros(4, 3), torch.zeros(5, 3))
