"""Mixed Barlow Twins' step: Barlow Twins on the views plus the mixed-sample regularizer."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.data.batch import Batch
from selfsup.data.spec import DataSpec
from selfsup.methods import METHODS
from selfsup.methods.barlow_twins import BarlowTwins
from selfsup.methods.mixed_barlow_twins import MixedBarlowTwins
from selfsup.objectives import BarlowTwins as BarlowTwinsLoss
from selfsup.objectives.redundancy import mix_inputs


class RecordingFlat(nn.Module):
    """A stand-in backbone (flattened pixels, one linear layer) that keeps every input."""

    def __init__(self, pixels: int, dim: int = 12):
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(pixels, dim)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.linear(x.flatten(1))


class FixedViews(nn.Module):
    """Two deterministic 'views' (no random numbers drawn), so the mix is the only draw."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.float() / 255
        return x, x.flip(-1) * 0.5 + 0.1


def official_regularizer(z_a, z_b, z_m, perm, alpha, lambda_, scale):
    """The official main.py lines: unbiased batch standardization, six products over B."""
    def standardize(z):
        return (z - z.mean(0)) / z.std(0)

    b = z_a.shape[0]
    a, bb, m = standardize(z_a), standardize(z_b), standardize(z_m)
    cc_m_1, cc_m_2 = m.T @ a / b, m.T @ bb / b
    gt_1 = alpha * a.T @ a / b + (1 - alpha) * bb[perm].T @ a / b
    gt_2 = alpha * a.T @ bb / b + (1 - alpha) * bb[perm].T @ bb / b
    return scale * lambda_ * ((cc_m_1 - gt_1).pow(2).sum() + (cc_m_2 - gt_2).pow(2).sum())


def build(mix_scale: float = 4.0) -> MixedBarlowTwins:
    torch.manual_seed(0)
    return MixedBarlowTwins(RecordingFlat(16), FixedViews(), DataSpec("image", (1, 4, 4), 10),
                            mix_scale=mix_scale, proj_hidden_dim=20, proj_dim=8)


def batch() -> Batch:
    inputs = torch.randint(0, 256, (10, 1, 4, 4), generator=torch.Generator().manual_seed(1),
                           dtype=torch.uint8)
    return Batch(inputs, None, torch.arange(10))


def test_registered_with_barlow_twins_hyperparameters():
    assert METHODS["mixed_barlow_twins"] is MixedBarlowTwins
    assert MixedBarlowTwins.info.family == "redundancy reduction"
    assert "Bandara" in MixedBarlowTwins.info.paper
    hp = MixedBarlowTwins.hparams()
    assert hp["mix_scale"] == 4.0 and hp["lambda_"] == BarlowTwins.hparams()["lambda_"]
    assert MixedBarlowTwins.recipe is BarlowTwins.recipe


def test_loss_is_barlow_twins_plus_the_mixed_regularizer():
    method = build()
    torch.manual_seed(7)
    out = method.training_loss(batch())
    torch.manual_seed(7)  # replay the step's one draw: alpha and the permutation
    x_a, x_b = FixedViews()(batch().inputs)
    x_m, alpha, perm = mix_inputs(x_a, x_b)
    assert 0 < alpha < 1 and not torch.equal(perm, torch.arange(10))
    # the third encoder pass is the mixed input
    seen = method.backbone.seen
    assert len(seen) == 3
    torch.testing.assert_close(seen[2], x_m)
    torch.testing.assert_close(seen[2], alpha * seen[0] + (1 - alpha) * seen[1][perm])
    with torch.no_grad():
        z_a, z_b, z_m = (method.projector(method.backbone.linear(x.flatten(1)))
                         for x in (x_a, x_b, x_m))
    bt = 0.1 * BarlowTwinsLoss(lambda_=0.0051)(z_a, z_b)
    mix = 0.1 * official_regularizer(z_a, z_b, z_m, perm, alpha, 0.0051, 4.0)
    assert mix > 1e-4
    torch.testing.assert_close(out["loss_bt"], bt)
    torch.testing.assert_close(out["loss_mix"], mix)
    torch.testing.assert_close(out["loss"].detach(), bt + mix)


def test_mix_scale_zero_is_barlow_twins():
    mixed = build(mix_scale=0.0)
    torch.manual_seed(0)
    plain = BarlowTwins(RecordingFlat(16), FixedViews(), DataSpec("image", (1, 4, 4), 10),
                        proj_hidden_dim=20, proj_dim=8)
    plain.load_state_dict(mixed.state_dict())
    got = mixed.training_loss(batch())
    assert got["loss_mix"] == 0
    torch.testing.assert_close(got["loss"], plain.training_loss(batch())["loss"])


def test_the_regularizer_trains_the_encoder():
    # same weights and draws; only the regularizer's weight differs, and so does the gradient
    grads = []
    for scale in (0.0, 4.0):
        method = build(mix_scale=scale)
        torch.manual_seed(3)
        loss = method.training_loss(batch())["loss"]
        grads.append(torch.autograd.grad(loss, method.backbone.linear.weight)[0])
    assert (grads[1] - grads[0]).abs().max() > 1e-6
