from __future__ import annotations

import math

import pytest
import torch

from selfsup.objectives import ISogCLR

SETTINGS = dict(tau_init=0.2, tau_min=0.05, tau_max=1.0, rho=0.4, gamma=0.8, eta=0.03, beta=0.5)


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def isogclr_reference(z1, z2, indices, state, s=SETTINGS, clip=3.0):
    """Qiu et al. 2023 Alg. 1, one anchor and one negative at a time. ``state`` holds python
    lists tau, u, m, seen and is updated in place; returns the loss (with graph)."""
    b = z1.shape[0]
    views = (z1, z2)
    total, new_u, grads = torch.zeros((), dtype=z1.dtype), {}, {}
    for v in range(2):
        for i in range(b):
            sample = int(indices[i])
            tau = state["tau"][sample]
            anchor, positive = unit(views[v][i]), unit(views[1 - v][i])
            pos = torch.dot(anchor, positive)
            sims = [torch.dot(anchor, unit(views[w][j])) for w in range(2) for j in range(b)
                    if j != i]
            g = sum(math.exp(x.item() / tau) for x in sims) / len(sims)
            u = (1 - s["gamma"]) * state["u"][sample] + s["gamma"] * g if state["seen"][sample] \
                else g
            weights = [math.exp(x.item() / tau) / u for x in sims]
            surrogate = sum(w * x for w, x in zip(weights, sims, strict=True)) / len(sims) - pos
            value = tau * math.log(g) - pos.item()
            total = total + surrogate + (value - surrogate.item())
            grad = math.log(u) + s["rho"] - sum(w * x.item() / tau for w, x in
                                                zip(weights, sims, strict=True)) / len(sims)
            new_u.setdefault(sample, []).append(u)
            grads.setdefault(sample, []).append(grad)
    for sample in new_u:
        grad = min(max(sum(grads[sample]) / 2, -clip), clip)
        m = (1 - s["beta"]) * state["m"][sample] + s["beta"] * grad
        state["m"][sample] = m
        state["tau"][sample] = min(max(state["tau"][sample] - s["eta"] * m, s["tau_min"]),
                                   s["tau_max"])
        state["u"][sample] = sum(new_u[sample]) / 2
        state["seen"][sample] = True
    return total / (2 * b)


def fresh_state(n: int, tau: float = SETTINGS["tau_init"]) -> dict[str, list]:
    tau = float(torch.tensor(tau))  # the buffers start in float32, then go to float64
    return {"tau": [tau] * n, "u": [0.0] * n, "m": [0.0] * n, "seen": [False] * n}


def loss_and_grads(fn, z1, z2, indices):
    z1, z2 = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    loss = fn(z1, z2, indices)
    return (loss.detach(), *torch.autograd.grad(loss, (z1, z2)))


def test_matches_slow_reference_over_steps_with_revisits():
    gen = torch.Generator().manual_seed(0)
    n = 10
    loss = ISogCLR(n, **SETTINGS).double()
    state = fresh_state(n)
    # the second and third steps revisit samples: the moving averages take over from there
    for indices in ([0, 3, 5, 7], [3, 1, 0, 9], [5, 3, 2, 8]):
        indices = torch.tensor(indices)
        z1 = torch.randn(4, 6, generator=gen, dtype=torch.float64)
        z2 = z1 + 0.4 * torch.randn(4, 6, generator=gen, dtype=torch.float64)
        got = loss_and_grads(loss, z1, z2, indices)
        want = loss_and_grads(lambda a, b, i: isogclr_reference(a, b, i, state), z1, z2, indices)
        assert got[0].dtype == torch.float64
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-6, rtol=0)
        for name in ("tau", "u"):
            torch.testing.assert_close(getattr(loss, name), torch.tensor(
                state[name], dtype=torch.float64), atol=1e-6, rtol=0)
        torch.testing.assert_close(loss.tau_momentum, torch.tensor(state["m"],
                                                                   dtype=torch.float64),
                                   atol=1e-6, rtol=0)
        assert loss.seen.tolist() == state["seen"]


def test_hand_computed_first_step():
    # Two samples, z1 = z2 = [[1, 0], [0, 1]], tau = 0.5. Anchor 0 (either view) has its
    # positive at cosine 1 and its 2 negatives (sample 1, both views) at cosine 0: g = e^0 = 1,
    # the loss is tau log g - 1 = -1 for every anchor. The tau gradient is log u + rho -
    # mean(w * s / tau) = 0 + 0.4 - 0 = 0.4; m = beta * 0.4 = 0.2 and tau <- 0.5 - 0.03 * 0.2.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    loss = ISogCLR(2, **{**SETTINGS, "tau_init": 0.5}).double()
    assert loss(z, z, torch.tensor([0, 1])).item() == pytest.approx(-1.0)
    torch.testing.assert_close(loss.u, torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(loss.tau, torch.full((2,), 0.5 - 0.03 * 0.2, dtype=torch.float64))
    # a second look: g = 1 again, so u = 0.2 * 1 + 0.8 * 1 = 1 and m = 0.5 * 0.2 + 0.5 * 0.4
    loss(z, z, torch.tensor([1, 0]))
    torch.testing.assert_close(loss.tau, torch.full((2,), 0.5 - 0.03 * (0.2 + 0.3),
                                                    dtype=torch.float64))


def test_frequent_semantics_keep_larger_temperatures_than_rare_ones():
    """The paper's claim (abstract, Sec. 4): samples with frequent semantics use large
    temperatures, samples with rare semantics small ones. Fixed embeddings: 4 frequent
    "semantics" of 40 near-copies each, and 40 rare samples pointing anywhere. dF/dtau =
    rho - KL(p || uniform) (see ISogCLR's docstring): a frequent anchor reaches KL = rho
    already at a large tau, as its softmax concentrates on its ~20% near-copies (log 5 > rho);
    a rare anchor's similarities are all small, so only a small tau sharpens p that far."""
    gen = torch.Generator().manual_seed(0)
    n, d, groups, size = 200, 32, 4, 40
    frequent = groups * size
    x = torch.randn(n, d, generator=gen)
    centers = torch.nn.functional.normalize(torch.randn(groups, d, generator=gen), dim=1)
    x[:frequent] = centers.repeat_interleave(size, 0) + 0.15 * x[:frequent] / math.sqrt(d)
    loss = ISogCLR(n, tau_init=0.3)
    for _ in range(300):
        indices = torch.randperm(n, generator=gen)[:64]
        z = x[indices]
        loss(z + 0.05 * torch.randn(z.shape, generator=gen) / math.sqrt(d),
             z + 0.05 * torch.randn(z.shape, generator=gen) / math.sqrt(d), indices)
    tau_frequent, tau_rare = loss.tau[:frequent].mean(), loss.tau[frequent:].mean()
    assert tau_frequent > tau_rare + 0.1, (tau_frequent, tau_rare)
    assert tau_rare < 0.3 < tau_frequent  # each moved from the common start, in its direction
    assert loss.tau.min() >= 0.05 and loss.tau.max() <= 1.0


def test_works_at_batch_size_two():
    loss = ISogCLR(4)
    z = torch.randn(2, 3, requires_grad=True)
    out = loss(z, z + 0.1, torch.tensor([2, 3]))
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(z.grad).all()


def test_bf16_inputs_give_a_float32_loss():
    gen = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    idx = torch.arange(8)
    low = ISogCLR(8)(z1.bfloat16(), z2.bfloat16(), idx)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ISogCLR(8)(z1, z2, idx), atol=3e-2, rtol=2e-2)


def test_state_is_in_the_state_dict():
    loss = ISogCLR(5)
    loss(torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0, 2, 4]))
    restored = ISogCLR(5)
    restored.load_state_dict(loss.state_dict())
    for name in ("tau", "u", "tau_momentum", "seen"):
        assert torch.equal(getattr(restored, name), getattr(loss, name))
    assert restored.seen.tolist() == [True, False, True, False, True]


@pytest.mark.parametrize("indices", [torch.tensor([0, 5]), torch.tensor([-1, 0]),
                                     torch.tensor([0.0, 1.0]), torch.tensor([0, 1, 2])])
def test_rejects_bad_indices(indices):
    with pytest.raises(ValueError, match="indices"):
        ISogCLR(5)(torch.randn(2, 3), torch.randn(2, 3), indices)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="tau"):
        ISogCLR(5, tau_init=2.0)
    with pytest.raises(ValueError, match="num_samples"):
        ISogCLR(1)


def test_one_rank_group_is_exactly_the_plain_path(one_rank_group):
    gen = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    idx = torch.tensor([5, 1, 0, 7, 3, 2])
    plain_loss = ISogCLR(8)
    plain = loss_and_grads(plain_loss, z1, z2, idx)
    grouped_loss = ISogCLR(8)
    with one_rank_group():
        grouped = loss_and_grads(grouped_loss, z1, z2, idx)
    for p, g in zip(plain, grouped, strict=True):
        assert torch.equal(p, g)
    for p, g in zip(plain_loss.state_dict().values(), grouped_loss.state_dict().values(),
                    strict=True):
        assert torch.equal(p, g)
