from __future__ import annotations

import math

import pytest
import torch

from selfsup.objectives import GroCo
from selfsup.objectives.sorting import odd_even_comparators, relaxed_sort

RELAX = {
    "cauchy": lambda v: 0.5 + torch.atan(v) / math.pi,
    "logistic": lambda v: 1 / (1 + torch.exp(-v)),
}


def sort_reference(values: list[torch.Tensor], steepness: float, relaxation: str):
    """Odd-even transposition network with soft swaps, one comparator and one scalar at a time."""
    n = len(values)
    x = list(values)
    p = [[torch.tensor(float(i == q), dtype=torch.float64) for q in range(n)] for i in range(n)]
    for layer in range(n):
        for lo in range(layer % 2, n - 1, 2):
            hi = lo + 1
            alpha = RELAX[relaxation](steepness * (x[hi] - x[lo]))
            x[lo], x[hi] = alpha * x[lo] + (1 - alpha) * x[hi], (1 - alpha) * x[lo] + alpha * x[hi]
            for i in range(n):
                p[i][lo], p[i][hi] = (alpha * p[i][lo] + (1 - alpha) * p[i][hi],
                                      (1 - alpha) * p[i][lo] + alpha * p[i][hi])
    return x, p


def cosine(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * v).sum() / (u.norm() * v.norm())


def groco_reference(z1, z2, negatives=10, steepness=1.0, relaxation="cauchy", stop_gradient=True):
    """The GroCo loss written out per anchor, with Python's sorted() for the hardest negatives."""
    n_samples = z1.shape[0]
    total = torch.zeros((), dtype=z1.dtype)
    for view, other in ((z1, z2), (z2, z1)):
        for i in range(n_samples):
            def held(t):
                return t.detach() if stop_gradient else t
            positive = cosine(view[i], held(other[i]))
            candidates = [cosine(view[i], held(view[j])) for j in range(n_samples) if j != i]
            k = min(negatives, n_samples - 1)
            # ascending, the k most similar
            hardest = sorted(candidates, key=lambda s: float(s.detach()))[-k:]
            _, p = sort_reference(hardest + [positive], steepness, relaxation)
            for m in range(k + 1):
                on_top = sum(p[m][t] for t in range(k, k + 1))
                if m == k:  # the positive should rank on top
                    total = total - torch.log(on_top) / (k + 1)
                else:
                    total = total - torch.log(1 - on_top) / (k + 1)
    return total / (2 * n_samples)


def loss_and_grads(loss_fn, z1, z2):
    z1, z2 = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    loss = loss_fn(z1, z2)
    g1, g2 = torch.autograd.grad(loss, (z1, z2))
    return loss.detach(), g1, g2


def random_pair(seed: int, b: int = 6, d: int = 5):
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(b, d, generator=gen, dtype=torch.float64)
    return z1, z1 + 0.8 * torch.randn(b, d, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 11])
def test_hard_limit_sorts_exactly_and_returns_the_permutation(n):
    gen = torch.Generator().manual_seed(n)
    scores = torch.randn(20, n, generator=gen, dtype=torch.float64)
    values, permutation = relaxed_sort(scores, steepness=math.inf)
    want = torch.sort(scores, dim=1)
    assert torch.equal(values, want.values)
    # P[i, q] = 1 exactly when input i lands at sorted position q.
    hard = torch.zeros(20, n, n, dtype=torch.float64)
    hard.scatter_(1, want.indices[:, None, :], 1.0)
    assert torch.equal(permutation, hard)


def test_every_permutation_of_five_is_sorted_in_the_hard_limit():
    import itertools

    rows = torch.tensor(list(itertools.permutations(range(5))), dtype=torch.float64)  # (120, 5)
    values, _ = relaxed_sort(rows, steepness=math.inf)
    assert torch.equal(values, torch.arange(5.0, dtype=torch.float64).expand(120, 5))


@pytest.mark.parametrize("relaxation", ["cauchy", "logistic"])
@pytest.mark.parametrize("steepness", [0.3, 1.0, 10.0])
def test_relaxed_permutations_are_doubly_stochastic(relaxation, steepness):
    gen = torch.Generator().manual_seed(3)
    scores = torch.randn(16, 7, generator=gen, dtype=torch.float64)
    values, permutation = relaxed_sort(scores, steepness, relaxation)
    assert permutation.min() >= 0 and permutation.max() <= 1
    ones = torch.ones(16, 7, dtype=torch.float64)
    torch.testing.assert_close(permutation.sum(1), ones, atol=1e-12, rtol=0)  # columns
    torch.testing.assert_close(permutation.sum(2), ones, atol=1e-12, rtol=0)  # rows
    torch.testing.assert_close(values, (scores[:, None, :] @ permutation).squeeze(1),
                               atol=1e-12, rtol=0)
    assert not torch.equal(values, torch.sort(scores, dim=1).values)  # really relaxed


@pytest.mark.parametrize("relaxation", ["cauchy", "logistic"])
def test_relaxed_sort_matches_slow_reference_with_gradients(relaxation):
    gen = torch.Generator().manual_seed(4)
    scores = torch.randn(3, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(3, 6, 6, generator=gen, dtype=torch.float64)
    values, permutation = relaxed_sort(scores, 2.0, relaxation)
    (grad,) = torch.autograd.grad((permutation * probe).sum() + values.sum(), scores)
    for row in range(3):
        x, p = sort_reference(list(scores[row]), 2.0, relaxation)
        torch.testing.assert_close(values[row], torch.stack(x), atol=1e-12, rtol=0)
        want_p = torch.stack([torch.stack(r) for r in p])
        torch.testing.assert_close(permutation[row], want_p, atol=1e-12, rtol=0)
        (want_grad,) = torch.autograd.grad((want_p * probe[row]).sum() + sum(x), scores)
        torch.testing.assert_close(grad[row], want_grad[row], atol=1e-10, rtol=0)


def test_steep_relaxation_approaches_the_hard_sort():
    scores = torch.tensor([[0.3, -0.5, 0.9, 0.1]], dtype=torch.float64)
    values, permutation = relaxed_sort(scores, 1e6, "logistic")
    hard_values, hard_permutation = relaxed_sort(scores, math.inf)
    torch.testing.assert_close(values, hard_values, atol=1e-9, rtol=0)
    torch.testing.assert_close(permutation, hard_permutation, atol=1e-9, rtol=0)


def test_odd_even_network_layers():
    assert odd_even_comparators(4) == (((0, 2), (1, 3)), ((1,), (2,)),
                                       ((0, 2), (1, 3)), ((1,), (2,)))
    assert odd_even_comparators(1) == (((), ()),)


@pytest.mark.parametrize(
    ("options", "b"),
    [({}, 6),  # 5 negatives available, 10 asked: all 5 used
     ({"negatives": 2}, 6),
     ({"negatives": 3, "steepness": 4.0, "relaxation": "logistic"}, 7),
     ({"negatives": 2, "stop_gradient": False}, 5)],
)
def test_groco_matches_slow_reference(options, b):
    z1, z2 = random_pair(5, b=b)
    got = loss_and_grads(GroCo(**options), z1, z2)
    want = loss_and_grads(lambda u, v: groco_reference(u, v, **options), z1, z2)
    assert got[0].dtype == torch.float64
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=0)


def test_groco_hand_computed_value():
    # z1 = [[1, 0], [0, 1]], z2 = [[1, 0], [1, 0]]: each anchor has one negative (the other
    # sample of its view), so the network is one soft comparator on (negative, positive) with
    # alpha = 1/2 + atan(pos - neg) / pi, and both BCE terms equal -log(alpha). Anchors:
    # z1_1 pos 1, neg 0 -> alpha 3/4; z1_2 pos 0, neg 0 -> 1/2; z2_1 pos 1, neg 1 -> 1/2;
    # z2_2 pos 0, neg 1 -> 1/4. Mean of -log alpha = (log(4/3) + log 2 + log 2 + log 4) / 4.
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    z2 = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    want = (math.log(4 / 3) + 4 * math.log(2)) / 4
    assert GroCo()(z1, z2).item() == pytest.approx(want, abs=1e-12)


def test_groco_ordered_groups_cost_less():
    gen = torch.Generator().manual_seed(6)
    z1 = torch.randn(32, 16, generator=gen)
    aligned = z1 + 0.05 * torch.randn(32, 16, generator=gen)
    unrelated = torch.randn(32, 16, generator=gen)
    assert GroCo()(z1, aligned) < GroCo()(z1, unrelated)


def test_groco_stop_gradient_pulls_only_the_anchor():
    # With the stop-gradient each view's gradient comes only from its own anchors; without it
    # the positives and negatives add theirs, and the gradient changes.
    z1, z2 = random_pair(7)
    held = loss_and_grads(GroCo(), z1, z2)
    free = loss_and_grads(GroCo(stop_gradient=False), z1, z2)
    torch.testing.assert_close(held[0], free[0], atol=0, rtol=0)
    assert not torch.allclose(held[1], free[1])


@pytest.mark.parametrize(
    ("options", "match"),
    [({"negatives": 0}, "negatives"), ({"steepness": 0.0}, "steepness"),
     ({"relaxation": "gaussian"}, "cauchy, logistic")],
)
def test_groco_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        GroCo(**options)


def test_groco_needs_a_negative_and_relaxed_sort_needs_rows():
    with pytest.raises(ValueError, match="at least 2 samples"):
        GroCo()(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="scores"):
        relaxed_sort(torch.randn(5))


def test_groco_one_rank_group_is_exactly_the_plain_path(one_rank_group):
    z1, z2 = random_pair(8)
    plain = loss_and_grads(GroCo(), z1, z2)
    with one_rank_group():
        grouped = loss_and_grads(GroCo(), z1, z2)
    for p, g in zip(plain, grouped, strict=True):
        assert torch.equal(p, g)
