"""Batched, per-sample-random augmentations on tensors (own code for crop, flip and one-channel
jitter; kornia for the rest)."""

from .two_crop import TwoCropViews, ViewConfig

__all__ = ["TwoCropViews", "ViewConfig"]
