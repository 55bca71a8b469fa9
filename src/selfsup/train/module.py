"""One LightningModule that trains every method."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch

from ..data.batch import Batch
from ..methods import Method
from .optim import build_optimizer
from .schedule import Schedule


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and what to change."""


class PretrainModule(L.LightningModule):
    """Runs ``method.training_loss`` with a step-wise warmup-cosine learning rate.

    The schedule is a pure function of (step, total_steps), so its whole state is two integers
    saved in the checkpoint. Under a time budget ``total_steps`` is provisional until the
    `TimeBudget` callback has measured the step time, then fixed for the rest of the run.
    """

    def __init__(self, method: Method, optimizer: str, lr: float, weight_decay: float,
                 warmup_fraction: float, total_steps: int, global_batch: int,
                 provisional_total: bool = False, schedule: Schedule | None = None,
                 betas: tuple[float, float] = (0.9, 0.999), compile: bool = False):
        super().__init__()
        self.schedule = schedule or Schedule("cosine", warmup_fraction)
        self.method = method
        self.optimizer_name = optimizer
        self.base_lr = lr
        self.weight_decay = weight_decay
        self.betas = tuple(betas)
        self.warmup_fraction = warmup_fraction
        self.total_steps = total_steps
        self.provisional_total = provisional_total
        self.global_batch = global_batch
        self.elapsed_before = 0.0  # seconds trained in earlier (resumed) sessions
        self._last_step_time: float | None = None
        self.images_per_s = 0.0
        self.terms: dict[str, torch.Tensor] = {}  # the method's terms beside its loss, last step
        self.compute_flops = 0.0  # training FLOPs so far, all processes (train/compute.py)
        # torch.compile of the method's forward (views, model, loss), compiled at its first call;
        # backward and the optimizer step stay eager. A plain function, not a module, so the
        # checkpoint's state_dict keys are the method's own either way.
        self._training_loss = (torch.compile(method.training_loss) if compile
                               else method.training_loss)

    @property
    def warmup_steps(self) -> int:
        return self.schedule.warmup_steps(self.total_steps)

    def current_lr(self) -> float:
        return self.base_lr * self.schedule(self.global_step, self.total_steps)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        lr = self.current_lr()
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = lr
        self.method.set_progress(min(1.0, self.global_step / max(1, self.total_steps)))

    def training_step(self, batch: Batch, batch_idx: int):
        # labels never train; methods with per-sample state read batch.indices
        if batch.inputs.shape[0] < 2:
            return None  # every file of this batch failed to decode: nothing to learn from
        now = time.perf_counter()
        if self._last_step_time is not None:
            rate = self.global_batch / (now - self._last_step_time)
            # exponential moving average: a readable figure, not one step's jitter
            ema = 0.9 * self.images_per_s + 0.1 * rate
            self.images_per_s = rate if self.images_per_s == 0 else ema
        self._last_step_time = now
        out = self._training_loss(batch)
        loss = out["loss"]
        self.check_finite(loss)
        # for the progress bar and the callbacks; MetricsLog hands the trackers (--logger) the
        # rows of metrics.jsonl, so Lightning logging these too would log them twice
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        self.log("lr", self.current_lr(), prog_bar=True, logger=False)
        self.log("img/s", self.images_per_s, prog_bar=True, logger=False)
        self.terms = {k: v.detach() for k, v in out.items() if k != "loss"}
        for k, v in self.terms.items():
            self.log(k, v, logger=False)
        return loss

    def check_finite(self, loss: torch.Tensor) -> None:
        """Stop before a non-finite loss reaches the weights, so the last checkpoint stays good.

        Every rank takes the same decision, so none is left waiting in a collective.
        """
        finite = bool(torch.isfinite(loss.detach()).all())
        if self.trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        # a loss blown up by a high lr comes with weights grown large; one that breaks while the
        # weights are modest points at one step's arithmetic (a reduced-precision overflow)
        largest = max((float(p.detach().abs().max()) for p in self.method.parameters()
                       if p.numel()), default=0.0)
        precision = str(self.trainer.precision)
        advice = "lower the learning rate (--lr) or lengthen the warmup (warmup_fraction)"
        if precision not in ("32", "32-true", "64", "64-true"):
            advice += (f"; if the weights are modest, a {precision} operation may have "
                       "overflowed: try --precision 32")
        raise TrainingDiverged(
            f"training diverged at step {self.global_step}: the loss is not finite "
            f"(lr {self.current_lr():.3g}, largest |weight| {largest:.3g}, precision "
            f"{precision}); {advice}; the last good checkpoint is kept")

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # the method's own update (momentum teachers) is part of the step: here, not in
        # on_train_batch_end, which Lightning calls after the callbacks' (a checkpoint saved
        # there missed it, and a resumed teacher drifted). Outside autocast; every DDP rank
        # runs it on the same synchronized weights. global_step counts this step once the
        # hook returns, hence the + 1.
        done = self.global_step + 1
        self.method.after_optimizer_step(min(1.0, done / max(1, self.total_steps)))

    def on_train_epoch_start(self) -> None:
        self._last_step_time = None  # the gap between epochs is not step time

    def configure_optimizers(self):
        return build_optimizer(self.optimizer_name, self.method, self.base_lr, self.weight_decay,
                               self.betas)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["selfsup"] = {"total_steps": int(self.total_steps),
                                 "elapsed_s": float(self.elapsed_before + self.session_elapsed())}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("selfsup", {})
        if self.provisional_total:
            # a time-budget run continues the schedule it had until TimeBudget measures again;
            # an epoch run's total follows its (possibly extended) config instead
            self.total_steps = int(state.get("total_steps", self.total_steps))
        self.elapsed_before = float(state.get("elapsed_s", 0.0))

    _session_start: float | None = None
    _session_end: float | None = None

    def on_train_start(self) -> None:
        self._session_start, self._session_end = time.perf_counter(), None

    def on_train_end(self) -> None:
        self._session_end = time.perf_counter()  # what follows (export, probes) is not training

    def session_elapsed(self) -> float:
        if self._session_start is None:
            return 0.0
        return (self._session_end or time.perf_counter()) - self._session_start
