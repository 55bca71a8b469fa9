"""Batched, per-sample-random augmentations on tensors, named by a registry: a recipe says
``ViewConfig(kind="two_crop")`` and the trainer builds that view maker. Mask samplers
(``selfsup.views.masking``) are functions methods call, since some masks depend on the model."""

from __future__ import annotations

from torch import nn

from ..backbones.preprocessing import Preprocessing
from .config import VIEW_KINDS, ViewConfig
from .crops import IdentityViews, MultiCropViews, OneCropViews, TwoCropViews
from .random_field import RandomFieldViews

VIEWS: dict[str, type[nn.Module]] = {
    "two_crop": TwoCropViews,
    "one_crop": OneCropViews,
    "multi_crop": MultiCropViews,
    "identity": IdentityViews,
    "random_field": RandomFieldViews,
}
assert set(VIEWS) == set(VIEW_KINDS)


def build_views(preprocessing: Preprocessing, config: ViewConfig) -> nn.Module:
    """The view maker ``config.kind`` names, for an encoder with ``preprocessing``."""
    config.validate()
    return VIEWS[config.kind](preprocessing, config)


__all__ = ["VIEWS", "VIEW_KINDS", "IdentityViews", "MultiCropViews", "OneCropViews",
           "RandomFieldViews", "TwoCropViews", "ViewConfig", "build_views"]
