"""CosineTriplet against a loop-by-loop transcription of its docstring equation."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.objectives import CosineTriplet


def reference(z1: torch.Tensor, z2: torch.Tensor, positives: torch.Tensor | None = None,
              ignore: torch.Tensor | None = None, margin: float = 0.5,
              hard_negatives: int | None = 4) -> torch.Tensor:
    """L = mean_a mean_{p in P(a)} mean_{n in N_k(a)} max(0, D(a, p) - D(a, n) + margin), one
    anchor, positive and negative at a time."""
    views = (z1, z2)
    n = z1.shape[0]

    def distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 1 - torch.dot(x, y) / (x.norm() * y.norm())

    per_anchor = []
    for i in range(n):
        friends = {i} | {j for j in range(n) if positives is not None and bool(positives[i, j])}
        for v in (0, 1):
            a = views[v][i]
            pos = [views[1 - v][j] for j in sorted(friends)]  # the other view of each friend
            neg = [views[w][j] for j in range(n) for w in (0, 1)
                   if j not in friends and not (ignore is not None and bool(ignore[i, j]))]
            # hardest (nearest) first
            d_neg = sorted((distance(a, x) for x in neg), key=lambda d: float(d.detach()))
            if hard_negatives is not None:
                d_neg = d_neg[:hard_negatives]
            if not d_neg:
                per_anchor.append(z1.new_zeros(()))
                continue
            pair_losses = []
            for p in pos:
                d_ap = distance(a, p)
                hinges = [torch.clamp(d_ap - d_an + margin, min=0) for d_an in d_neg]
                pair_losses.append(torch.stack(hinges).mean())
            per_anchor.append(torch.stack(pair_losses).mean())
    return torch.stack(per_anchor).mean()


def random_edges(n: int, p: float, seed: int, symmetric: bool = True) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    edges = torch.rand(n, n, generator=gen) < p
    if symmetric:
        edges = edges | edges.T
    return edges.fill_diagonal_(False)


# Two samples, two views, margin 0.5, all negatives (hard_negatives=None):
#   z1 = [(1, 0), (0, 1)], z2 = [(1, 0), (1, 1)]; r = 1 - 1/sqrt(2) = 0.2929 is the cosine
#   distance between (1, 1) and either axis; D = 1 between the axes, 0 for equal vectors.
#   anchor z1[0]: positive z2[0] (D 0); negatives z1[1] (D 1), z2[1] (D r)
#                 hinges max(0, 0 - 1 + .5) = 0 and max(0, 0 - r + .5) = .5 - r  -> (.5 - r) / 2
#   anchor z1[1]: positive z2[1] (D r); negatives z1[0], z2[0] (D 1 each)
#                 hinges max(0, r - 1 + .5) = 0 twice                              -> 0
#   anchor z2[0]: positive z1[0] (D 0); negatives z1[1] (D 1), z2[1] (D r)        -> (.5 - r) / 2
#   anchor z2[1]: positive z1[1] (D r); negatives z1[0], z2[0] (D r each)
#                 hinges r - r + .5 = .5 twice                                     -> .5
#   L = ((.5 - r) + .5) / 4 = (1 - r) / 4 = 1 / (4 sqrt 2) = 0.17678
# With hard_negatives=1 each anchor keeps its nearest negative only: z1[0] and z2[0] keep z2[1]
# (hinge .5 - r each), z1[1] keeps 0, z2[1] keeps .5: L = (2 (.5 - r) + .5) / 4 = 0.22855.
HAND_Z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
HAND_Z2 = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
R = 1 - 1 / math.sqrt(2)


def test_hand_computed_two_samples():
    all_negatives = CosineTriplet(margin=0.5, hard_negatives=None)(HAND_Z1, HAND_Z2)
    torch.testing.assert_close(all_negatives, torch.tensor(1 / (4 * math.sqrt(2)),
                                                           dtype=torch.float64))
    hardest = CosineTriplet(margin=0.5, hard_negatives=1)(HAND_Z1, HAND_Z2)
    torch.testing.assert_close(hardest, torch.tensor((2 * (0.5 - R) + 0.5) / 4,
                                                     dtype=torch.float64))


@pytest.mark.parametrize("hard_negatives", [None, 1, 3, 100])
@pytest.mark.parametrize("margin", [0.0, 0.5, 1.3])
def test_matches_loop_reference_without_edges(hard_negatives, margin):
    gen = torch.Generator().manual_seed(1)
    z1 = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    z2 = z1 + 0.7 * torch.randn(7, 5, generator=gen, dtype=torch.float64)
    got = CosineTriplet(margin=margin, hard_negatives=hard_negatives)(z1, z2)
    torch.testing.assert_close(got, reference(z1, z2, margin=margin,
                                              hard_negatives=hard_negatives))


@pytest.mark.parametrize("hard_negatives", [None, 2])
@pytest.mark.parametrize("symmetric", [True, False])
def test_matches_loop_reference_with_positives_and_ignore(hard_negatives, symmetric):
    gen = torch.Generator().manual_seed(2)
    n = 9
    z1 = torch.randn(n, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    z2 = (z1.detach() + 0.5 * torch.randn(n, 4, generator=gen, dtype=torch.float64)
          ).requires_grad_()
    positives = random_edges(n, 0.15, seed=3, symmetric=symmetric)
    ignore = random_edges(n, 0.15, seed=4, symmetric=False) & ~positives
    assert positives.any() and ignore.any()
    loss = CosineTriplet(hard_negatives=hard_negatives)(z1, z2, positives, ignore)
    want = reference(z1, z2, positives, ignore, hard_negatives=hard_negatives)
    torch.testing.assert_close(loss, want)
    got_grads = torch.autograd.grad(loss, (z1, z2))
    want_grads = torch.autograd.grad(want, (z1, z2))
    for got, expected in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(got, expected)


def test_positives_leave_the_negatives_and_join_the_positives():
    # In the hand case, making 0 - 1 an edge leaves no negatives at all: every anchor adds 0.
    both = torch.tensor([[False, True], [True, False]])
    assert CosineTriplet(hard_negatives=None)(HAND_Z1, HAND_Z2, both) == 0
    # ignoring 0 - 1 removes the negatives too, but not as positives: still 0 with no negatives
    assert CosineTriplet(hard_negatives=None)(HAND_Z1, HAND_Z2, ignore=both) == 0
    # a third, far sample gives every anchor a negative again; the positive z2[1] for anchor
    # z1[0] is now in the loss, so the value moves
    z1 = torch.cat((HAND_Z1, torch.tensor([[-1.0, -1.0]], dtype=torch.float64)))
    z2 = torch.cat((HAND_Z2, torch.tensor([[-1.0, -1.0]], dtype=torch.float64)))
    edges = torch.zeros(3, 3, dtype=torch.bool)
    edges[0, 1] = edges[1, 0] = True
    loss = CosineTriplet(margin=2.0, hard_negatives=None)(z1, z2, edges)
    torch.testing.assert_close(loss, reference(z1, z2, edges, margin=2.0, hard_negatives=None))
    assert loss != CosineTriplet(margin=2.0, hard_negatives=None)(z1, z2)


def test_margin_zero_and_separated_views_give_zero():
    # each view equals its partner (D = 0) and negatives are orthogonal (D = 1)
    z = torch.eye(4, dtype=torch.float64)
    assert CosineTriplet(margin=0.0)(z, z) == 0
    assert CosineTriplet(margin=0.99)(z, z) == 0
    assert CosineTriplet(margin=1.01)(z, z) > 0


def test_every_hinge_active_makes_the_loss_linear_in_the_margin():
    # cosine distances lie in [0, 2], so a margin above 2 activates every hinge
    gen = torch.Generator().manual_seed(5)
    z1, z2 = torch.randn(6, 3, generator=gen), torch.randn(6, 3, generator=gen)
    low, high = CosineTriplet(margin=2.5)(z1, z2), CosineTriplet(margin=3.5)(z1, z2)
    torch.testing.assert_close(high - low, torch.tensor(1.0))


def test_more_hard_negatives_than_candidates_is_all_of_them():
    gen = torch.Generator().manual_seed(6)
    z1, z2 = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    # 2 other samples x 2 views = 4 candidates
    torch.testing.assert_close(CosineTriplet(hard_negatives=4)(z1, z2),
                               CosineTriplet(hard_negatives=None)(z1, z2))
    torch.testing.assert_close(CosineTriplet(hard_negatives=50)(z1, z2),
                               CosineTriplet(hard_negatives=None)(z1, z2))
    assert CosineTriplet(hard_negatives=1)(z1, z2) != CosineTriplet(hard_negatives=None)(z1, z2)


def test_scale_invariant():
    gen = torch.Generator().manual_seed(7)
    z1, z2 = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    torch.testing.assert_close(CosineTriplet()(z1, z2), CosineTriplet()(3 * z1, 0.2 * z2))


@pytest.mark.parametrize("kwargs, match", [({"margin": -0.1}, "margin"),
                                           ({"hard_negatives": 0}, "hard_negatives")])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CosineTriplet(**kwargs)


def test_bad_inputs():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError):
        CosineTriplet()(z, torch.randn(5, 3))
    with pytest.raises(ValueError, match="positives must be"):
        CosineTriplet()(z, z, torch.zeros(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="ignore must be"):
        CosineTriplet()(z, z, ignore=torch.zeros(3, 4, dtype=torch.bool))
