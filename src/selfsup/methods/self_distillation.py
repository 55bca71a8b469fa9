"""Self-distillation targets for any two-view objective (``method_args.teacher_momentum``).

The lever of issue 18: the objective stays the method's own (NT-Xent, Barlow Twins, ...), but
its second argument comes from a momentum teacher, and the student gains a predictor, as in
BYOL (Grill et al. 2020, "Bootstrap Your Own Latent") and MoCo v3 (Chen, Xie and He 2021, "An
Empirical Study of Training Self-Supervised Vision Transformers"), whose loss is exactly a
contrastive objective between predicted queries and momentum keys. With views v_1, v_2 (global)
and v_3 .. v_{2+V} (small crops, DINO's rule: Caron et al. 2021, "Emerging Properties in
Self-Supervised Vision Transformers", the teacher sees only the global crops)::

    p_i = q(g(f(v_i)))              student: encoder f, projector g, predictor q
    t_j = g_T(f_T(v_j)),  j in {1, 2}   teacher: no gradient, theta_T <- m theta_T + (1 - m) theta
    L   = mean over (i, j), i != j, of l(p_i, t_j)

With two views L = (l(p_1, t_2) + l(p_2, t_1)) / 2, BYOL's and MoCo v3's symmetrized loss. The
momentum follows BYOL's cosine from ``teacher_momentum`` to 1 (`momentum.cosine_momentum`),
the teacher is `momentum.MomentumTeacher`, MoCo's. The predictor is the projector's shape (one
hidden layer of the projector's hidden width, BN, ReLU) from proj_dim back to proj_dim, as BYOL's.

Cost: two teacher forward passes per step, no backward; at equal wall clock the run takes
fewer steps than the method without a teacher (benchmarks/RESULTS.md has the trade measured).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .heads import projection_mlp
from .momentum import MomentumTeacher, cosine_momentum
from .multicrop import project_views


class SelfDistillation(nn.Module):
    """A momentum teacher of ``student`` (encoder then projector) and a predictor on the student.

    The predictor is trained with the method's other heads (it is a submodule of the method);
    the teacher's parameters do not require gradients, so the optimizer and DDP skip them, and
    its weights travel in every checkpoint.
    """

    def __init__(self, student: nn.Module, proj_dim: int, hidden_dim: int, momentum: float):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"teacher_momentum must be in [0, 1], got {momentum}")
        self.base_momentum = momentum
        self.predictor = projection_mlp(proj_dim, hidden_dim, proj_dim)
        self.teacher = MomentumTeacher(student)

    def loss(self, objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             views: Sequence[torch.Tensor],
             project: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The mean of ``objective(p_i, t_j)`` over every student view i and global view j != i.

        ``views``: [v_1, v_2, (small crops)] as a view maker returns them, (B, C, S, S) each;
        ``project``: the student's encoder then projector.
        """
        views = list(views)
        p = project_views(views, lambda x: self.predictor(project(x)))  # [(B, D)] * (2 + V)
        t = [self.teacher(v) for v in views[:2]]  # [(B, D)] * 2, no gradient
        terms = [objective(p[i], t[j]) for j in (0, 1) for i in range(len(p)) if i != j]
        return torch.stack(terms).mean()

    def follow(self, student: nn.Module, progress: float) -> None:
        """After an optimizer step: the teacher moves towards the student."""
        self.teacher.update(student, cosine_momentum(progress, self.base_momentum))

