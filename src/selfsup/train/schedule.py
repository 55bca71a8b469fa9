"""Learning-rate schedules as pure functions of the step, so resuming needs only the step.

Each returns a factor on the base learning rate. ``Schedule`` picks one by name from the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("cosine", "linear", "infinite", "repeated-cosine")


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, final: float = 0.0) -> float:
    """Factor on the base lr: linear warmup from 0, then cosine decay to ``final``
    (Loshchilov & Hutter 2017, as used by SimCLR and Barlow Twins)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_linear(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warmup from 0, then linear decay to 0 at ``total_steps``: the budget-aware
    schedule of Li, Yumer & Ramanan 2020 ("Budgeted Training: Rethinking Deep Neural Network
    Training Under Resource Constraints"), which beats cosine and step decay when the budget is
    a few epochs, as a 10-minute CPU run is."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, 1.0 - (step - warmup_steps) / max(1, total_steps - warmup_steps))


def repeated_cosine(step: int, stage_steps: int, warmup_steps: int) -> float:
    """Warmup + cosine to 0, restarted every ``stage_steps``: the repeated cosine of continual
    pretraining that "Beyond Cosine Decay" (Singh et al. 2025) compares against. The re-warming
    at each restart is what causes forgetting there."""
    return warmup_cosine(step % max(1, stage_steps), stage_steps, warmup_steps)


def infinite(step: int, total_steps: int, warmup_steps: int, cooldown_steps: int,
             constant: float = 0.5, anneal_steps: int = 0) -> float:
    """The infinite schedule (Ibrahim et al. 2024; Singh et al. 2025, "Beyond Cosine Decay"):

        warmup     t < W:           (t + 1) / W
        cooldown   W <= t < W + C:  c + (1 - c) * (1 + cos(pi (t - W) / C)) / 2
        constant   afterwards:      c
        anneal     last A steps:    the above * (T - t) / A, linear to 0 at t = T

    The constant phase has no end, so a run can be continued on new data without re-warming.
    The anneal is the short linear cooldown of Hägele et al. 2024 ("Scaling Laws and
    Compute-Optimal Training Beyond Fixed Training Durations"), run only when the weights are
    to be used.
    """
    if warmup_steps > 0 and step < warmup_steps:
        level = (step + 1) / warmup_steps
    elif cooldown_steps > 0 and step < warmup_steps + cooldown_steps:
        progress = (step - warmup_steps) / cooldown_steps
        level = constant + (1.0 - constant) * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        level = constant
    if anneal_steps > 0:
        level *= min(1.0, max(0.0, (total_steps - step) / anneal_steps))
    return level


@dataclass(frozen=True)
class Schedule:
    """The config's choice of schedule; ``continuing`` (``--init-from``) skips the infinite
    schedule's warmup and cooldown, so a new stage starts on the constant phase."""

    name: str = "cosine"
    warmup_fraction: float = 0.0
    constant: float = 0.5
    cooldown_fraction: float = 0.2
    anneal_fraction: float = 0.1
    continuing: bool = False

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.name!r}; valid: {', '.join(SCHEDULES)}")

    def warmup_steps(self, total_steps: int) -> int:
        if self.name == "infinite" and self.continuing:
            return 0
        return round(self.warmup_fraction * total_steps)

    def __call__(self, step: int, total_steps: int) -> float:
        warmup = self.warmup_steps(total_steps)
        if self.name == "cosine":
            return warmup_cosine(step, total_steps, warmup)
        if self.name == "linear":
            return warmup_linear(step, total_steps, warmup)
        if self.name == "repeated-cosine":
            return repeated_cosine(step, total_steps, warmup)
        cooldown = 0 if self.continuing else round(self.cooldown_fraction * total_steps)
        return infinite(step, total_steps, warmup, cooldown, self.constant,
                        round(self.anneal_fraction * total_steps))
