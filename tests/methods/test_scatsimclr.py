"""ScatSimCLR's step: NT-Xent plus lambda times the pretext losses, on the scattering encoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup.backbones import build_backbone
from selfsup.data.batch import Batch
from selfsup.data.spec import DataSpec
from selfsup.methods import METHODS
from selfsup.methods.scatsimclr import ScatSimCLR


class FixedViews(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.float() / 255
        return x, x.flip(-1)


def build(**kwargs) -> ScatSimCLR:
    torch.manual_seed(0)
    backbone = build_backbone("scatnet", channels=1, input_size=12, width=8, blocks=1, L=4)
    return ScatSimCLR(backbone, FixedViews(), DataSpec("image", (1, 12, 12), 6), **kwargs)


def batch() -> Batch:
    gen = torch.Generator().manual_seed(1)
    return Batch(torch.randint(0, 256, (6, 1, 12, 12), generator=gen, dtype=torch.uint8), None,
                 torch.arange(6))


def test_registered_with_the_scattering_backbone():
    assert METHODS["scatsimclr"] is ScatSimCLR
    assert ScatSimCLR.recipe.backbone == "scatnet"
    hp = ScatSimCLR.hparams()
    assert (hp["temperature"], hp["pretext_weight"], hp["pretext"]) == (0.5, 0.3, "rotation")


def test_loss_is_contrastive_plus_weighted_pretext_losses():
    method = build(pretext="rotation+jigsaw", jigsaw_permutations=5)
    out = method.training_loss(batch())
    want = out["loss_contrastive"] + 0.3 * (out["loss_rotation"] + out["loss_jigsaw"])
    torch.testing.assert_close(out["loss"].detach(), want)
    assert 0 <= out["rotation_acc"] <= 1 and 0 <= out["jigsaw_acc"] <= 1
    # an untrained head is near chance: cross-entropy near log(classes)
    assert abs(float(out["loss_rotation"]) - torch.log(torch.tensor(4.0))) < 1.0
    assert abs(float(out["loss_jigsaw"]) - torch.log(torch.tensor(5.0))) < 1.0
    out["loss"].backward()
    for head in (method.rotation_head, method.tile_head, method.jigsaw_head):
        assert all(p.grad is not None for p in head.parameters())


@pytest.mark.parametrize("pretext, heads", [("rotation", {"rotation_head"}),
                                            ("jigsaw", {"tile_head", "jigsaw_head"}),
                                            ("none", set())])
def test_one_pretext_at_a_time(pretext, heads):
    method = build(pretext=pretext, jigsaw_permutations=5)
    made = {name for name in ("rotation_head", "tile_head", "jigsaw_head")
            if hasattr(method, name)}
    assert made == heads
    out = method.training_loss(batch())
    if pretext == "none":
        torch.testing.assert_close(out["loss"].detach(), out["loss_contrastive"])
    else:
        assert set(out) == {"loss", "loss_contrastive", f"loss_{pretext}", f"{pretext}_acc"}


def test_bad_settings():
    with pytest.raises(ValueError, match="rotation"):
        build(pretext="colour")
    with pytest.raises(ValueError, match="pretext_weight"):
        build(pretext_weight=-1.0)
