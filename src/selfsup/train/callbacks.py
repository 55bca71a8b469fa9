"""Callbacks: time budget, metrics.jsonl, atomic periodic checkpoints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from .trackers import log_row

Cost = Callable[[np.ndarray], np.ndarray]


def constant_cost(progress: np.ndarray) -> np.ndarray:
    return np.ones_like(np.asarray(progress, dtype=float))


def fit_total_steps(step: int, left_s: float, unit_s: float, cost: Cost = constant_cost) -> int:
    """The largest schedule T whose steps ``step .. T-1`` fit in ``left_s`` seconds when step s
    takes ``unit_s * cost(s / T)`` (at least ``step + 1``). With a constant cost this is
    ``step + left_s // unit_s``; progressive resizing makes early steps cheaper."""
    def spent(total: int) -> float:
        return unit_s * float(cost(np.arange(step, total) / total).sum())

    cheapest = max(float(cost(np.zeros(1))[0]), 1e-3)
    lo, hi = step + 1, step + 1 + int(left_s / (unit_s * cheapest)) + 1
    while lo < hi:  # bisection on T: spent(T) grows with T
        mid = (lo + hi + 1) // 2
        if spent(mid) <= left_s:
            lo = mid
        else:
            hi = mid - 1
    return lo


class TimeBudget(L.Callback):
    """Stops cleanly when the wall-clock budget is spent, and sizes the lr schedule to it.

    After ``calibrate_at`` steps it measures the step time and fixes ``total_steps`` so the cosine
    reaches its end as the budget runs out. During the schedule's first half it measures again
    every ``refine_every`` steps, or every eighth of the schedule when that is shorter (at
    least 10 steps), each time from the steps since the last measurement: a start slowed by
    something else on the machine would otherwise fix a schedule that ends long before the
    budget. Rank 0's estimate is broadcast so every process follows the same schedule.

    ``cost(progress)`` is a step's cost relative to the final steps' (the views'
    ``relative_cost``: below 1 while progressive resizing trains on small crops). A
    measurement then gives the time of one unit of cost, and the schedule is the longest whose
    remaining steps fit (`fit_total_steps`). Until one measurement has seen only full-cost
    steps it also measures again in the second half, where the crops grow.
    """

    def __init__(self, budget_s: float, calibrate_from: int = 5, calibrate_at: int = 25,
                 refine_every: int = 100, clock: Callable[[], float] = time.perf_counter,
                 cost: Cost = constant_cost):
        self.budget_s = budget_s
        self.refine_every = refine_every
        self.calibrate_from = calibrate_from
        self.calibrate_at = calibrate_at
        self.clock = clock
        self.cost = cost
        self._since: tuple[float, int] | None = None  # (time, step) the next measure starts at
        self.calibrated = False
        self._measured_below_full_cost = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # every session measures again: a resumed run may have a new budget or another machine
        self._since = None
        self._start_step = trainer.global_step
        self.calibrated = False
        self._measured_below_full_cost = True

    def refine_interval(self, total_steps: int) -> int:
        return max(10, min(self.refine_every, total_steps // 8))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        done = trainer.global_step - self._start_step
        if done == self.calibrate_from:
            self._since = (self.clock(), done)
        # the first steps run slower (allocator and kernel warm-up): measure from calibrate_from
        total = pl_module.total_steps
        due = self._since is not None and (done == self.calibrate_at or (
            self.calibrated
            and done - self._since[1] >= self.refine_interval(total)
            and (trainer.global_step < total // 2 or self._measured_below_full_cost)))
        if due:
            now, (then, then_done) = self.clock(), self._since
            first = self._start_step + then_done  # the window's global steps: first .. step-1
            window_cost = self.cost(np.arange(first, trainer.global_step) / total)
            unit_s = (now - then) / float(window_cost.sum())
            self._measured_below_full_cost = bool(window_cost.min() < 1)
            self._since = (now, done)
            left = self.budget_s - pl_module.elapsed_before - pl_module.session_elapsed()
            total = fit_total_steps(trainer.global_step, left, unit_s, self.cost)
            pl_module.total_steps = int(trainer.strategy.broadcast(total, src=0))
            self.calibrated = True
        spent = pl_module.elapsed_before + pl_module.session_elapsed()
        out_of_time = trainer.strategy.broadcast(spent >= self.budget_s, src=0)
        if out_of_time or (self.calibrated and trainer.global_step >= pl_module.total_steps):
            trainer.should_stop = True


class MetricsLog(L.Callback):
    """Appends one JSON object per logged step to ``metrics.jsonl`` (rank 0 only), and hands
    the same row to the run's trackers (``--logger``)."""

    def __init__(self, path: Path, every: int = 10):
        self.path = Path(path)
        self.every = max(1, every)

    def _write(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def on_train_start(self, trainer, pl_module) -> None:
        # a resumed run: drop what the killed session logged after its last checkpoint (and a
        # line torn by the kill), so the log reads as one uninterrupted run
        if not trainer.is_global_zero or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("step", 0) <= trainer.global_step:
                kept.append(line + "\n")
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(kept))
        tmp.replace(self.path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or step % self.every:
            return
        m = trainer.callback_metrics
        row = {
            "step": step,
            "epoch": trainer.current_epoch,
            "loss": float(m["loss"]) if "loss" in m else None,
            "lr": pl_module.current_lr(),
            "images_per_s": round(pl_module.images_per_s, 2),
            "elapsed_s": round(pl_module.elapsed_before + pl_module.session_elapsed(), 2),
            "compute_flops": float(f"{pl_module.compute_flops:.6g}"),
        }
        # the method's own terms of this step beside its loss (loss parts, mined pairs, ...)
        row |= {k: float(v) for k, v in pl_module.terms.items()}
        self._write(row)
        log_row(trainer.loggers, row, step)  # --logger: the same values as metrics.jsonl

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self._write({"epoch_end": trainer.current_epoch, "step": trainer.global_step,
                         "elapsed_s": round(pl_module.elapsed_before
                                            + pl_module.session_elapsed(), 2)})


class PeriodicCheckpoint(L.Callback):
    """Writes ``last.ckpt`` every ``every_s`` seconds, at each epoch end and when training ends.

    The write itself is atomic (see `AtomicCheckpointIO`), so a kill never leaves a torn file.
    """

    def __init__(self, path: Path, every_s: float = 120.0):
        self.path = Path(path)
        self.every_s = every_s
        self._last = time.perf_counter()

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)
        self._last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        due = time.perf_counter() - self._last >= self.every_s
        if trainer.strategy.broadcast(due, src=0):
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer)


