"""TimeBudget sizes the schedule to the budget, on a simulated clock (no training)."""

from types import SimpleNamespace

import pytest

from selfsup.train.callbacks import TimeBudget


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(step_seconds, budget_s: float = 300.0) -> tuple[float, int, int]:
    """Run TimeBudget over steps taking ``step_seconds(step)`` each; returns (seconds spent,
    steps taken, the schedule's final total_steps)."""
    clock = Clock()
    callback = TimeBudget(budget_s, clock=clock)
    module = SimpleNamespace(total_steps=10_000, elapsed_before=0.0,
                             session_elapsed=lambda: clock.now)
    trainer = SimpleNamespace(global_step=0, should_stop=False,
                              strategy=SimpleNamespace(broadcast=lambda x, src: x))
    callback.on_train_start(trainer, module)
    while not trainer.should_stop:
        clock.now += step_seconds(trainer.global_step + 1)
        trainer.global_step += 1
        callback.on_train_batch_end(trainer, module, None, None, trainer.global_step - 1)
    return clock.now, trainer.global_step, module.total_steps


def test_a_steady_run_ends_its_schedule_as_the_budget_runs_out():
    spent, steps, total = simulate(lambda step: 0.5)
    assert steps == total == pytest.approx(600, abs=2)
    assert spent == pytest.approx(300, abs=1)


def test_a_start_slowed_by_other_work_does_not_end_the_run_early():
    # the first 25 steps at 3 s (the machine busy), then 0.4 s: measured at step 25 alone the
    # schedule would be 25 + 225 / 3 = 100 steps and end at 105 s of the 300; the measurements
    # that follow see the faster steps and stretch it to the budget
    spent, steps, total = simulate(lambda step: 3.0 if step <= 25 else 0.4)
    assert steps == total
    assert spent > 0.9 * 300
    assert steps > 500


def test_the_budget_stops_a_run_whose_steps_slow_down_late():
    # steps twice as slow in the second half: the schedule is fixed by then, the clock stops it
    spent, steps, total = simulate(lambda step: 0.5 if step <= 300 else 1.0)
    assert spent == pytest.approx(300, abs=1)
    assert steps < total
