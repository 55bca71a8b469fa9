"""What watches a run during training is decided by what the method makes (its ``product``),
so the trainer never asks which method it runs.

- ``encoder``: RankMe and the collapse check on a fixed probe subset of the training images,
  and with ``select_by: rankme`` the highest-RankMe checkpoint (``train/monitors.py``).

A product that needs no monitor (an image-to-image model, later) maps to no callbacks.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L

from ..data import DataSource
from ..rundir import RunDir
from .config import ConfigError, PretrainConfig
from .monitors import RankMeMonitor, probe_images


def encoder_monitors(source: DataSource, config: PretrainConfig, run: RunDir
                     ) -> list[L.Callback]:
    if not config.rankme_samples:
        return []
    best = run.best if config.select_by == "rankme" else None
    return [RankMeMonitor(probe_images(source.train, config.rankme_samples), run.metrics,
                          config.rankme_every, best)]


MONITORS: dict[str, Callable[[DataSource, PretrainConfig, RunDir], list[L.Callback]]] = {
    "encoder": encoder_monitors,
}


def product_monitors(product: str, source: DataSource, config: PretrainConfig, run: RunDir
                     ) -> list[L.Callback]:
    if product not in MONITORS:
        raise ConfigError(f"unknown product {product!r}; valid: {', '.join(MONITORS)}")
    return MONITORS[product](source, config, run)
