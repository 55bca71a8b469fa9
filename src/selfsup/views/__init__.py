"""Batched, per-sample-random augmentations on tensors, named by a registry: a recipe says
``ViewConfig(kind="two_crop")`` and the trainer builds that view maker. Mask samplers
(``selfsup.views.masking``) are functions methods call, since some masks depend on the model.
Every view maker is a `ViewMaker`: it follows the training progress (progressive resizing) and
tells the time budget what a step costs."""

from __future__ import annotations

from ..backbones.preprocessing import Preprocessing
from .config import VIEW_KINDS, ViewConfig
from .crops import IdentityViews, MultiCropViews, OneCropViews, TwoCropViews, ViewMaker
from .random_field import RandomFieldViews

VIEWS: dict[str, type[ViewMaker]] = {
    "two_crop": TwoCropViews,
    "one_crop": OneCropViews,
    "multi_crop": MultiCropViews,
    "identity": IdentityViews,
    "random_field": RandomFieldViews,
}
assert set(VIEWS) == set(VIEW_KINDS)


def build_views(preprocessing: Preprocessing, config: ViewConfig) -> ViewMaker:
    """The view maker ``config.kind`` names, for an encoder with ``preprocessing``."""
    config.validate()
    return VIEWS[config.kind](preprocessing, config)


__all__ = ["VIEWS", "VIEW_KINDS", "IdentityViews", "MultiCropViews", "OneCropViews",
           "RandomFieldViews", "TwoCropViews", "ViewConfig", "ViewMaker", "build_views"]
