"""TimeBudget sizes the schedule to the budget, on a simulated clock (no training)."""

from types import SimpleNamespace

import numpy as np
import pytest

from selfsup.backbones import Preprocessing
from selfsup.train.callbacks import TimeBudget, constant_cost, fit_total_steps
from selfsup.views import TwoCropViews, ViewConfig


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(step_seconds, budget_s: float = 300.0, cost=constant_cost
             ) -> tuple[float, int, int]:
    """Run TimeBudget over steps taking ``step_seconds(step, progress)`` each (step counted
    from 1, progress = steps before it / total_steps, as the trainer hands the views); returns
    (seconds spent, steps taken, the schedule's final total_steps)."""
    clock = Clock()
    callback = TimeBudget(budget_s, clock=clock, cost=cost)
    module = SimpleNamespace(total_steps=10_000, elapsed_before=0.0,
                             session_elapsed=lambda: clock.now)
    trainer = SimpleNamespace(global_step=0, should_stop=False,
                              strategy=SimpleNamespace(broadcast=lambda x, src: x))
    callback.on_train_start(trainer, module)
    while not trainer.should_stop:
        progress = min(1.0, trainer.global_step / module.total_steps)
        clock.now += step_seconds(trainer.global_step + 1, progress)
        trainer.global_step += 1
        callback.on_train_batch_end(trainer, module, None, None, trainer.global_step - 1)
    return clock.now, trainer.global_step, module.total_steps


def test_a_steady_run_ends_its_schedule_as_the_budget_runs_out():
    spent, steps, total = simulate(lambda step, _: 0.5)
    assert steps == total == pytest.approx(600, abs=2)
    assert spent == pytest.approx(300, abs=1)


def test_a_start_slowed_by_other_work_does_not_end_the_run_early():
    # the first 25 steps at 3 s (the machine busy), then 0.4 s: measured at step 25 alone the
    # schedule would be 25 + 225 / 3 = 100 steps and end at 105 s of the 300; the measurements
    # that follow see the faster steps and stretch it to the budget
    spent, steps, total = simulate(lambda step, _: 3.0 if step <= 25 else 0.4)
    assert steps == total
    assert spent > 0.9 * 300
    assert steps > 500


def test_the_budget_stops_a_run_whose_steps_slow_down_late():
    # steps twice as slow in the second half: the schedule is fixed by then, the clock stops it
    spent, steps, total = simulate(lambda step, _: 0.5 if step <= 300 else 1.0)
    assert spent == pytest.approx(300, abs=1)
    assert steps < total


def test_fit_total_steps_by_hand():
    # constant cost: 100 s left at 0.5 s a step after step 10 -> 200 more steps
    assert fit_total_steps(10, 100.0, 0.5) == 210
    # steps in the first half of the schedule cost a quarter: 0.25 (T / 2) + T / 2 <= 100 s
    # at 1 s a unit gives T = 160 (steps 0-79 cost 20 s, 80-159 cost 80 s); T = 161 puts
    # step 80 in the cheap half too (80 / 161 < 0.5): 81 x 0.25 + 80 = 100.25 s, too long
    def half_cheap(p):
        return np.where(np.asarray(p) < 0.5, 0.25, 1.0)

    assert fit_total_steps(0, 100.0, 1.0, half_cheap) == 160


def test_progressive_resizing_fills_the_budget_and_ends_its_schedule():
    # crops grow from 14 to 20 px late in training; a step costs a fixed 0.1 s plus 0.4 s
    # scaled by the crop's pixels, so the pixel-only cost model overstates the small crops'
    # savings. The measurements in the second half, once the crops are full size, correct it.
    views = TwoCropViews(Preprocessing(28, 1, (0.5,), (0.5,)),
                         ViewConfig(crop_ratio=0.72, min_crop_ratio=0.5))

    def step_seconds(step, progress):
        return 0.1 + 0.4 * float(views.relative_cost(np.array([progress]))[0])

    spent, steps, total = simulate(step_seconds, cost=views.relative_cost)
    assert steps == total  # the cosine reached its end
    assert spent == pytest.approx(300, rel=0.03)
    # steps at 14 px take 0.296 s and at 20 px 0.5 s: more than the 600 of full-size steps
    assert steps > 700
