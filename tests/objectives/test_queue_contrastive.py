from __future__ import annotations

import math

import pytest
import torch

from selfsup.objectives import MoCHi, QueueInfoNCE
from selfsup.objectives.queue_contrastive import mix_hard_negatives


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def queue_info_nce_reference(q, k, queue, tau, extra=None):
    """MoCo eq. 1 one query at a time: -log e^{q.k/T} / (e^{q.k/T} + sum_n e^{q.n/T}), with
    optional per-query extra negatives (B, M, D) added to the denominator."""
    total = torch.zeros((), dtype=q.dtype)
    for i in range(q.shape[0]):
        qi, ki = unit(q[i]), unit(k[i]).detach()
        positive = torch.exp(torch.dot(qi, ki) / tau)
        denominator = positive
        for n in queue:
            denominator = denominator + torch.exp(torch.dot(qi, unit(n)) / tau)
        if extra is not None:
            for h in extra[i]:
                denominator = denominator + torch.exp(torch.dot(qi, h) / tau)
        total = total - torch.log(positive / denominator)
    return total / q.shape[0]


def loss_and_grad(fn, q, k, queue):
    q = q.detach().clone().requires_grad_()
    loss = fn(q, k, queue)
    (grad,) = torch.autograd.grad(loss, q)
    return loss.detach(), grad


def random_inputs(seed: int, b: int = 5, d: int = 4, size: int = 7):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, d, generator=gen, dtype=torch.float64)
    k = q + 0.5 * torch.randn(b, d, generator=gen, dtype=torch.float64)
    queue = torch.randn(size, d, generator=gen, dtype=torch.float64)
    return q, k, queue


@pytest.mark.parametrize("tau", [0.1, 0.2, 1.0])
def test_queue_info_nce_matches_slow_reference(tau):
    q, k, queue = random_inputs(0)
    got = loss_and_grad(QueueInfoNCE(tau), q, k, queue)
    want = loss_and_grad(lambda a, b, c: queue_info_nce_reference(a, b, c, tau), q, k, queue)
    assert got[0].dtype == torch.float64
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=0)


def test_queue_info_nce_hand_computed():
    # q = k = e1, queue = {e2, -e1}, T = 1: -log(e / (e + e^0 + e^-1)) = log(1 + (1 + 1/e) / e)
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    want = math.log(1 + (1 + 1 / math.e) / math.e)
    assert QueueInfoNCE(1.0)(q, 5 * q, 3 * queue).item() == pytest.approx(want, abs=1e-12)


def test_queue_and_key_get_no_gradient():
    q, k, queue = random_inputs(1)
    k.requires_grad_()
    queue.requires_grad_()
    QueueInfoNCE()(q.requires_grad_(), k, queue).backward()
    assert k.grad is None and queue.grad is None and q.grad is not None


@pytest.mark.parametrize(("n_hard", "s", "s_prime"), [(3, 4, 2), (7, 5, 0), (1, 0, 3)])
def test_mochi_matches_reference_with_the_same_synthetic_negatives(n_hard, s, s_prime):
    q, k, queue = random_inputs(2)
    loss = MoCHi(0.2, n_hard, s, s_prime)
    got = loss_and_grad(lambda a, b, c: loss(a, b, c, torch.Generator().manual_seed(5)),
                        q, k, queue)
    synthetic = mix_hard_negatives(q, queue, n_hard, s, s_prime,
                                   torch.Generator().manual_seed(5)).vectors
    want = loss_and_grad(lambda a, b, c: queue_info_nce_reference(a, b, c, 0.2, synthetic),
                         q, k, queue)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=0)


def test_mochi_without_mixing_is_moco():
    q, k, queue = random_inputs(3)
    torch.testing.assert_close(MoCHi(0.2, 4, 0, 0)(q, k, queue), QueueInfoNCE(0.2)(q, k, queue),
                               atol=1e-12, rtol=0)


def test_synthetic_negatives_are_unit_norm_mixtures_of_the_hardest():
    q, _, queue = random_inputs(4, b=6, d=5, size=20)
    n_hard, s, s_prime = 6, 40, 30
    mix = mix_hard_negatives(q, queue, n_hard, s, s_prime, torch.Generator().manual_seed(0))
    assert mix.vectors.shape == (6, s + s_prime, 5)
    torch.testing.assert_close(mix.vectors.norm(dim=2), torch.ones(6, s + s_prime,
                                                                    dtype=torch.float64))
    for i in range(6):
        # brute force: rank every queue key by cosine to the query, one at a time
        cosines = [torch.dot(unit(q[i]), unit(n)).item() for n in queue]
        hardest = set(sorted(range(20), key=lambda j: -cosines[j])[:n_hard])
        assert set(mix.hard[i].tolist()) == hardest
        assert set(mix.pairs[i].flatten().tolist()) <= hardest
        assert set(mix.partners[i].tolist()) <= hardest
        for j in range(s):
            a, (m, n) = mix.alpha[i, j], mix.pairs[i, j].tolist()
            assert 0 <= a <= 1
            want = unit(a * unit(queue[m]) + (1 - a) * unit(queue[n]))
            torch.testing.assert_close(mix.vectors[i, j], want)
        for j in range(s_prime):
            b, n = mix.beta[i, j], mix.partners[i, j].item()
            assert 0 <= b < 0.5  # the query never dominates its own negative
            want = unit(b * unit(q[i]) + (1 - b) * unit(queue[n]))
            torch.testing.assert_close(mix.vectors[i, s + j], want)


def test_synthetic_negatives_carry_no_gradient():
    q, k, queue = random_inputs(5)
    q.requires_grad_()
    assert not mix_hard_negatives(q, queue, 3, 4, 4).vectors.requires_grad


def test_bf16_inputs_give_a_float32_loss():
    q, k, queue = (t.float() for t in random_inputs(6))
    for loss in (QueueInfoNCE(), MoCHi(0.2, 3, 4, 2)):
        gen = (lambda: torch.Generator().manual_seed(1)) if isinstance(loss, MoCHi) else None
        args = (gen(),) if gen else ()
        low = loss(q.bfloat16(), k.bfloat16(), queue, *args)
        assert low.dtype == torch.float32
        torch.testing.assert_close(low, loss(q, k, queue, *((gen(),) if gen else ())),
                                   atol=5e-2, rtol=2e-2)


@pytest.mark.parametrize(("q", "k", "queue"), [
    (torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(5, 3)),
    (torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(5, 2)),
    (torch.zeros(4), torch.zeros(4), torch.zeros(5, 4)),
    (torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long), torch.zeros(5, 3)),
])
def test_rejects_bad_shapes(q, k, queue):
    for loss in (QueueInfoNCE(), MoCHi(0.2, 2, 2, 2)):
        with pytest.raises(ValueError, match="projection|queue"):
            loss(q, k, queue)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="temperature"):
        QueueInfoNCE(0.0)
    with pytest.raises(ValueError, match="n_hard"):
        MoCHi(0.2, 0, 1, 1)
    q, k, queue = random_inputs(7)
    with pytest.raises(ValueError, match="n_hard"):
        MoCHi(0.2, 8, 1, 1)(q, k, queue)  # only 7 keys in the queue
