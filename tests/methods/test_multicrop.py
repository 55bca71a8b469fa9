"""Multi-crop for two-view methods: the pair rule by hand, one pass for the small crops, and
SimCLR and Barlow Twins training on multi_crop views."""

from __future__ import annotations

import pytest
import torch

from selfsup.backbones import Preprocessing, build_backbone
from selfsup.data.batch import as_batch
from selfsup.data.spec import DataSpec
from selfsup.methods import get_method
from selfsup.methods.multicrop import multi_crop_loss, project_views
from selfsup.views import ViewConfig, build_views


def test_pairs_by_hand():
    def loss(a, b):  # an asymmetric stand-in: which pairs, in which order, is visible
        return (10 * a + b).sum()

    z = [torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([3.0]), torch.tensor([4.0])]
    # pairs (1,2), (1,3), (2,3), (1,4), (2,4): 12 + 13 + 23 + 14 + 24 = 86 over 5
    assert multi_crop_loss(loss, z).item() == pytest.approx(86 / 5)
    assert multi_crop_loss(loss, z[:2]).item() == 12  # two views: the loss itself
    with pytest.raises(ValueError, match="at least two views"):
        project_views([torch.zeros(2, 3)], lambda x: x)


def test_small_crops_share_one_pass():
    calls = []

    def project(x):
        calls.append(tuple(x.shape))
        return x.flatten(1)[:, :4]

    views = [torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)] + [torch.randn(3, 1, 4, 4)] * 3
    z = project_views(views, project)
    assert calls == [(3, 1, 8, 8), (3, 1, 8, 8), (9, 1, 4, 4)]
    assert len(z) == 5 and all(t.shape == (3, 4) for t in z)
    torch.testing.assert_close(z[3], views[3].flatten(1)[:, :4])


def build(name, kind, **views):
    pre = Preprocessing(16, 1, (0.5,), (0.25,))
    backbone = build_backbone("resnet10w32", channels=1, input_size=16, mean=(0.5,),
                              std=(0.25,))
    cls = get_method(name)
    config = ViewConfig.from_dict({**cls.recipe.views.to_dict(), "kind": kind, **views})
    return cls(backbone, build_views(pre, config), DataSpec("image", (1, 16, 16), 8))


@pytest.mark.parametrize("name", ["simclr", "barlow_twins"])
def test_two_crop_loss_unchanged_and_multi_crop_trains(name):
    images = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8)
    method = build(name, "two_crop")
    torch.manual_seed(0)
    loss = method.training_loss(as_batch(images))["loss"]
    torch.manual_seed(0)
    x1, x2 = method.views(images)  # the two-view computation written out
    z1, z2 = (method.projector(method.encode(x)) for x in (x1, x2))
    scale = getattr(method, "loss_scale", 1.0)
    torch.testing.assert_close(loss, scale * method.objective(z1, z2))
    method = build(name, "multi_crop", small_crops=2)
    out = method.training_loss(as_batch(images))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert all(p.grad is not None for p in method.backbone.parameters())
