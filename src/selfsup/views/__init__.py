"""Batched, per-sample-random augmentations on tensors (kornia)."""

from .two_crop import TwoCropViews, ViewConfig

__all__ = ["TwoCropViews", "ViewConfig"]
