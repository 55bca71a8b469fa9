"""The shape SimCLR and Barlow Twins share: one objective between the projections g(f(v)) of a
batch's views, or, with ``teacher_momentum``, between the student's predictions and a momentum
teacher's targets (self_distillation.py).

A subclass builds its projector and objective, hands them to ``TwoViewMethod.__init__`` and
returns ``self.two_view_loss(batch)`` (scaled as it likes) from ``training_loss``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from .base import Method
from .multicrop import multi_crop_loss, project_views
from .self_distillation import SelfDistillation


class TwoViewMethod(Method):
    """Encoder f, projector g, objective l(z_a, z_b); multi-crop's pair rule over more views."""

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 projector: nn.Module,
                 objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 proj_dim: int, proj_hidden_dim: int, teacher_momentum: float | None):
        super().__init__(backbone, views, data)
        self.projector = projector
        self.objective = objective
        # None: the paper's method; a momentum: targets from a teacher (self_distillation.py)
        self.distillation = None if teacher_momentum is None else SelfDistillation(
            self.student, proj_dim, proj_hidden_dim, teacher_momentum)

    @property
    def student(self) -> nn.Module:
        """What the teacher copies: the encoder, then the projector."""
        return nn.Sequential(self.backbone, self.projector)

    def two_view_loss(self, batch: Batch) -> torch.Tensor:
        """The views against each other, or the student's predictions against the teacher."""
        # two views (B, C, S, S), or two plus small crops under multi_crop views
        views = self.views(batch.inputs)
        project = lambda x: self.projector(self.encode(x))  # noqa: E731  (B, proj_dim)
        if self.distillation is None:
            return multi_crop_loss(self.objective, project_views(views, project))
        return self.distillation.loss(self.objective, views, project)

    def after_optimizer_step(self, progress: float) -> None:
        if self.distillation is not None:
            self.distillation.follow(self.student, progress)
