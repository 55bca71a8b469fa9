"""MoCo v2 (Chen et al. 2020, "Improved Baselines with Momentum Contrastive Learning"; He et al.
2020, "Momentum Contrast for Unsupervised Visual Representation Learning").

A query encoder (backbone + MLP projector) trained by InfoNCE against the key of the other view
from a momentum encoder and a FIFO queue of past keys. The representation used downstream is the
query backbone's.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives import QueueInfoNCE
from ..views import ViewConfig
from .base import Method, Recipe
from .heads import projection_mlp
from .momentum import KeyQueue, MomentumTeacher, cosine_momentum
from .registry import register

DEFAULT_QUEUE = 4096


@register("moco", family="contrastive",
          paper="Chen et al. 2020, Improved Baselines with Momentum Contrastive Learning "
                "(MoCo v2)")
class MoCo(Method):
    # Paper: SGD lr 0.03 x B/256, wd 1e-4, T = 0.2, K = 65536 keys, m = 0.999 fixed, 2048-d MLP
    # head, one direction per image. Here: SimCLR's AdamW recipe and views for 28 px (the
    # sweep in benchmarks/RESULTS.md), T = 0.2 as in v2 (its queue of thousands of negatives is
    # what the 0.2 was tuned for), K = 4096 (65536 is more than Fashion-MNIST's 60k images),
    # and momentum 0.99 -> 1 on BYOL's cosine: a run of a few thousand steps cannot wait for a
    # 0.999 teacher to catch up. Both views act as queries (each a key for the other), as in
    # MoCo v3: every image gives two loss terms for the two backbone passes it costs anyway.
    recipe = Recipe(optimizer="adamw", lr=2e-3, weight_decay=0.05, warmup_fraction=0.05,
                    views=ViewConfig(crop_scale=(0.5, 1.0), crop_ratio=0.72))

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 temperature: float = 0.2, queue_size: int | None = None,
                 momentum: float = 0.99, proj_hidden_dim: int = 512, proj_dim: int = 128):
        super().__init__(backbone, views, data)
        self.projector = projection_mlp(backbone.dim, proj_hidden_dim, proj_dim)
        self.teacher = MomentumTeacher(nn.Sequential(backbone, self.projector))
        self.queue = KeyQueue(self.queue_size_for(data.num_samples, queue_size), proj_dim)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.base_momentum = momentum
        self.objective = self.build_objective(temperature)

    @staticmethod
    def queue_size_for(num_samples: int, queue_size: int | None) -> int:
        """``queue_size`` or, by default, 4096 capped at half the training set.

        A queue longer than the data minus a batch would hold an older key of an image of the
        current batch: its own view, contrasted as a negative. Half the data leaves a margin
        for any batch the trainer accepts, so the default adapts (digits' 1797 images get 898
        keys) while an explicit size that cannot work is an error.
        """
        if queue_size is None:
            return min(DEFAULT_QUEUE, num_samples // 2)
        if not 1 <= queue_size <= num_samples // 2:
            raise ValueError(f"queue_size {queue_size} must be between 1 and half the "
                             f"{num_samples} training images ({num_samples // 2}), or the "
                             "queue holds older keys of the images it contrasts")
        return queue_size

    def build_objective(self, temperature: float) -> nn.Module:
        return QueueInfoNCE(temperature)

    def contrast(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.objective(q, k, self.queue.keys)

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x1, x2 = self.views(batch.inputs)  # (B, C, S, S) each
        q1 = self.projector(self.encode(x1))  # (B, proj_dim)
        q2 = self.projector(self.encode(x2))
        k1 = self.teacher(x1)  # (B, proj_dim)
        k2 = self.teacher(x2)
        loss = 0.5 * (self.contrast(q1, k2) + self.contrast(q2, k1))
        # only now: the queue must not hold this batch's keys while its loss reads the queue
        self.queue.enqueue(nn.functional.normalize(k2.float(), dim=1))
        return {"loss": loss}

    def after_optimizer_step(self, progress: float) -> None:
        self.teacher.update(nn.Sequential(self.backbone, self.projector),
                            cosine_momentum(progress, self.base_momentum))
