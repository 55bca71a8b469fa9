"""What every method shares: a backbone, views, heads, an objective and a training recipe."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import nn

from ..views import ViewConfig


@dataclass
class Recipe:
    """Optimizer and schedule a method trains with unless the user overrides them.

    ``lr`` is the base learning rate for a batch of 256; the trainer scales it linearly with the
    global batch size (Goyal et al. 2017), as SimCLR and Barlow Twins do.
    """

    optimizer: str = "lars"
    lr: float = 0.3
    weight_decay: float = 1e-6
    warmup_fraction: float = 0.05
    views: ViewConfig = field(default_factory=ViewConfig)
    batch_sampler: str = "random"  # "guided": G-SimCLR's batches, no two of one pseudo-class


class Method(nn.Module):
    """Base class. A subclass declares ``recipe`` and builds its heads in ``__init__``.

    ``training_loss`` takes the uint8 batch (B, C, H, W) and returns a dict holding ``loss``
    plus anything worth logging. Methods never own an optimizer or a loop. Three general
    mechanisms serve stateful methods without special cases in the trainer:

    - ``after_optimizer_step(progress)`` runs after every optimizer step (momentum teachers);
    - ``uses_training_set = True``: the trainer builds the method with ``num_samples`` (the
      training set size) and calls ``training_loss(images, indices=...)`` with each sample's
      dataset index (per-sample temperatures; a queue no longer than the data);
    - state kept in registered buffers (queues, temperatures) travels in every checkpoint and
      comes back on resume.
    """

    recipe: ClassVar[Recipe] = Recipe()
    info: ClassVar[Any]
    uses_training_set: ClassVar[bool] = False

    def __init__(self, backbone: nn.Module, views: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.views = views

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, dim); channels_last lets oneDNN/cuDNN pick their fast kernels."""
        return self.backbone(x.contiguous(memory_format=torch.channels_last))

    def training_loss(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def after_optimizer_step(self, progress: float) -> None:
        """Called after each optimizer step with progress = step / total steps, in [0, 1]."""

    @classmethod
    def hparams(cls) -> dict[str, Any]:
        """The method's own keyword arguments and their defaults (for config and --help)."""
        import inspect

        sig = inspect.signature(cls.__init__)
        return {
            k: p.default
            for k, p in sig.parameters.items()
            if k not in ("self", "backbone", "views", "num_samples")
            and p.default is not inspect.Parameter.empty
        }


def recipe_fields() -> list[str]:
    return [f.name for f in fields(Recipe)]
