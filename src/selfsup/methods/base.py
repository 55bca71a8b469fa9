"""What every method shares: a backbone, views, heads, an objective and a training recipe."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..views import ViewConfig


@dataclass
class Recipe:
    """Optimizer, schedule, views and backbone a method trains with unless the user overrides
    them.

    ``lr`` is the base learning rate for a batch of 256; the trainer scales it linearly with the
    global batch size (Goyal et al. 2017), as SimCLR and Barlow Twins do. ``betas`` are Adam's
    (AdamW only). ``backbone`` "default" is the CPU default ResNet; ``backbone_args`` are
    the method's own backbone settings (MAE's mean pooling), under the user's ``backbone_args``.
    ``grad_clip``: the largest global L2 norm of the gradients (Lightning's
    ``gradient_clip_val``) where the paper's recipe clips; None: no clipping.
    """

    optimizer: str = "lars"
    lr: float = 0.3
    weight_decay: float = 1e-6
    warmup_fraction: float = 0.05
    views: ViewConfig = field(default_factory=ViewConfig)
    batch_sampler: str = "random"  # "guided": G-SimCLR's batches, no two of one pseudo-class
    betas: tuple[float, float] = (0.9, 0.999)
    backbone: str = "default"
    backbone_args: dict[str, Any] = field(default_factory=dict)
    grad_clip: float | None = None


class Method(nn.Module):
    """Base class. A subclass declares ``recipe`` and builds its heads in ``__init__``.

    It is built with its backbone, its view maker (the kind ``recipe.views`` names) and a
    `DataSpec` of its training data, so per-sample state is sized without a trainer flag.
    ``training_loss(batch)`` takes a `Batch` (uint8 ``inputs``, ``labels`` or None,
    ``indices``) and returns a dict holding ``loss`` plus anything worth logging. Methods never
    own an optimizer or a loop. Stateful methods need no special case in the trainer either:

    - ``set_progress(progress)`` runs before every step (the views' crop size);
    - ``after_optimizer_step(progress)`` runs after every optimizer step (momentum teachers);
    - state kept in registered buffers (queues, temperatures) travels in every checkpoint and
      comes back on resume.

    ``product`` names what the method makes (an encoder today); the product decides the
    monitors and evaluation protocols that fit it, and ``export()`` returns the module saved.
    ``modalities`` names the data it trains on (`DataSpec.modality`).
    """

    recipe: ClassVar[Recipe] = Recipe()
    info: ClassVar[Any]
    product: ClassVar[str] = "encoder"
    modalities: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec):
        super().__init__()
        self.backbone = backbone
        self.views = views
        self.data = data

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, dim)."""
        return self.backbone(x)

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def set_progress(self, progress: float) -> None:
        """Called before each step with progress = step / total steps, in [0, 1]; the views
        follow it (progressive resizing grows the crops)."""
        self.views.set_progress(progress)

    def after_optimizer_step(self, progress: float) -> None:
        """Called after each optimizer step with progress = step / total steps, in [0, 1]."""

    def export(self) -> nn.Module:
        """The product saved to the run directory: the backbone, for an encoder."""
        return self.backbone

    @classmethod
    def hparams(cls) -> dict[str, Any]:
        """The method's own keyword arguments and their defaults (for config and --help)."""
        sig = inspect.signature(cls.__init__)
        return {
            k: p.default
            for k, p in sig.parameters.items()
            if k not in ("self", "backbone", "views", "data")
            and p.default is not inspect.Parameter.empty
        }
