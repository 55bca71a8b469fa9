"""Momentum components shared by MoCo-style methods: an EMA teacher and a FIFO queue of keys.

He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation Learning": the key
encoder is an exponential moving average of the query encoder, theta_k <- m theta_k +
(1 - m) theta_q, and the keys of past batches wait in a queue as negatives. The momentum follows
BYOL's cosine schedule (Grill et al. 2020), m(t) = 1 - (1 - m_0) (cos(pi t) + 1) / 2 for training
progress t in [0, 1], so the teacher freezes towards the end of training.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .. import distributed


def cosine_momentum(progress: float, base: float) -> float:
    """BYOL's schedule: ``base`` at the start of training, 1 at the end."""
    progress = min(max(progress, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


class MomentumTeacher(nn.Module):
    """A frozen copy of ``student`` that follows it by EMA: no gradient, not in the optimizer.

    The copy lives as a submodule, so its weights travel in every checkpoint; its parameters have
    ``requires_grad=False``, which keeps them out of ``train.optim.parameter_groups`` and out of
    DDP's gradient reduction. Every rank applies the same update to the same (synchronized)
    student weights, so the teachers stay identical across ranks without communication.
    Batch-norm running statistics are the teacher's own, from its forward passes in train mode,
    as in MoCo's key encoder.
    """

    def __init__(self, student: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(student)
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    @torch.no_grad()
    def update(self, student: nn.Module, momentum: float) -> None:
        """theta_t <- m theta_t + (1 - m) theta_s, parameter by parameter."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        teacher = list(self.module.parameters())
        params = list(student.parameters())
        if len(teacher) != len(params):
            raise ValueError("student and teacher have different architectures")
        for t, s in zip(teacher, params, strict=True):
            t.lerp_(s.detach(), 1.0 - momentum)


class KeyQueue(nn.Module):
    """A FIFO queue of ``size`` unit-norm keys of dimension ``dim`` (MoCo's dictionary).

    Starts with random unit vectors, as MoCo's does, so the loss has negatives from step one;
    ``enqueue`` then overwrites the oldest entries first. Keys and write pointer are buffers, so
    a checkpoint carries the queue and a resumed run continues with the same negatives.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be >= 1, got {size}")
        keys = nn.functional.normalize(torch.randn(size, dim), dim=1)
        self.register_buffer("keys", keys)  # (K, D)
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Append this step's keys (b, D) of every rank, in rank order, replacing the oldest.

        Call it only after the loss of the step has been computed, so the queue never holds a
        key of the current batch while that batch's loss reads it.
        """
        keys = distributed.gather_with_grad(keys.detach()).to(self.keys.dtype)  # (b * world, D)
        n = keys.shape[0]
        if n > self.size:
            raise ValueError(f"a step brings {n} keys but the queue holds only {self.size}; "
                             "use a queue at least as large as the global batch")
        slots = (self.pointer + torch.arange(n, device=keys.device)) % self.size  # (n,)
        self.keys[slots] = keys
        self.pointer.copy_((self.pointer + n) % self.size)

    def oldest_first(self) -> torch.Tensor:
        """The keys from oldest to newest (K, D): what the FIFO order means, for tests."""
        return torch.roll(self.keys, -int(self.pointer), dims=0)
