"""Training compute: the FLOPs of the real training step, counted by torch's FLOP counter and
summed over processes, recorded for every run and usable as its budget (``--compute 100tflop``).

A wall-clock budget does not travel between machines (the same "10 minutes" is a different
run on an AVX2 and an AMX CPU); steps and FLOPs do. The FLOPs are counted on the step itself,
not on a model formula, so the views, every crop of multi-crop, the masks' subsets of patches,
momentum teachers and heads are all in it.

What torch.utils.flop_counter counts: the ops it has a formula for (matrix multiplies, linear
layers, convolutions and their transposes, attention), forward and backward. What it misses:
elementwise and reduction ops (activations, normalization layers, softmax outside attention,
the augmentations' per-pixel arithmetic and resampling), the optimizer's update, decoding in
the loader's workers and the processes' communication.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from .callbacks import Cost, constant_cost, fit_total_steps


class ComputeMeter(L.Callback):
    """Counts a step's FLOPs under `FlopCounterMode` on the first step of each session and again
    whenever the views say a step's cost changed (``cost(progress)``: progressive resizing grows
    the crops), sums them over processes, and adds the latest count for every step trained.
    The running total is ``pl_module.compute_flops`` (logged in metrics.jsonl) and travels in
    the checkpoint, so a resumed run goes on counting from where it stopped.

    With ``budget_flops`` the run stops once the next step would pass the budget, and each count
    sizes the learning-rate schedule to what is left (the largest total whose remaining steps
    fit, as `TimeBudget` does with seconds). Counting runs each op through Python once: only on
    those few steps.
    """

    def __init__(self, budget_flops: float | None = None, cost: Cost = constant_cost):
        self.budget_flops = budget_flops
        self.cost = cost
        self.spent = 0.0  # FLOPs of every step trained so far, all processes, all sessions
        self.per_step = 0.0  # the latest count: one step, all processes
        self.counts: list[dict[str, float]] = []  # each count: step, relative cost, FLOPs
        self._key: float | None = None  # the relative cost the latest count was made at
        self._counting_key: float | None = None
        self._counter: FlopCounterMode | None = None

    def relative_cost(self, pl_module: L.LightningModule) -> float:
        progress = min(1.0, pl_module.global_step / max(1, pl_module.total_steps))
        return round(float(self.cost(np.array([progress]))[0]), 4)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._key = None  # every session counts again: another machine, another budget
        pl_module.compute_flops = self.spent

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        key = self.relative_cost(pl_module)
        if key != self._key:
            self._counting_key = key
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        counted = self._counter is not None
        if counted:
            self._counter.__exit__(None, None, None)
            mine = torch.tensor(float(self._counter.get_total_flops()), device=pl_module.device)
            self._counter = None
            self.per_step = float(trainer.strategy.reduce(mine, reduce_op="sum"))
            self._key = self._counting_key
            self.counts.append({"step": trainer.global_step - 1, "relative_cost": self._key,
                                "flops": self.per_step})
        self.spent += self.per_step
        pl_module.compute_flops = self.spent
        if self.budget_flops is None:
            return
        if counted and self.per_step > 0:
            # FLOPs of one unit of the views' cost; the schedule is the longest that fits
            unit = self.per_step / max(self._key, 1e-3)
            pl_module.total_steps = fit_total_steps(trainer.global_step,
                                                    self.budget_flops - self.spent, unit,
                                                    self.cost)
        if self.spent >= self.budget_flops or trainer.global_step >= pl_module.total_steps:
            trainer.should_stop = True

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # a step that raised (a diverged loss, a kill in a test) must not leave the counter on
        # the dispatch stack of the process, slowing and counting whatever runs next
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self._counter = None

    def state_dict(self) -> dict[str, Any]:
        return {"spent": self.spent, "per_step": self.per_step, "counts": list(self.counts)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.spent = float(state_dict.get("spent", 0.0))
        self.per_step = float(state_dict.get("per_step", 0.0))
        self.counts = list(state_dict.get("counts", []))
