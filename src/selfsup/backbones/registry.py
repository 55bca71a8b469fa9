"""Backbones are registered by name, like methods: the name plus its config rebuilds the module.

A registered builder is called as ``builder(preprocessing, **config)``; the module it returns
records that ``config`` (with its ``name``) in ``module.config``, which ``encoder.json`` keeps.

The contract every backbone meets:
- ``forward(x) -> (B, dim)`` pooled features, what every probe reads; ``dim`` and
  ``preprocessing`` are attributes;
- ``named_features(x) -> {name: (B, D_name)}`` pooled features at each depth, in order, the
  last equal to ``forward(x)`` (the layers probe);
- token models also give ``tokens(x, keep=None) -> (B, 1 + n, dim)`` (CLS first) and encode only
  the patches ``keep`` (B, n) names when it is given;
- memory-format choices (channels_last) are the backbone's own business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

BACKBONES: dict[str, BackboneInfo] = {}


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    family: str  # "resnet", "vit", ...
    build: Callable[..., nn.Module]


def register_backbone(name: str, *, family: str) -> Callable[[Callable], Callable]:
    """Decorator for a builder ``fn(preprocessing, **config) -> nn.Module``."""

    def wrap(fn: Callable) -> Callable:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} registered twice")
        BACKBONES[name] = BackboneInfo(name, family, fn)
        return fn

    return wrap


def get_backbone(name: str) -> BackboneInfo:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]
