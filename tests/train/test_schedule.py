import math

import pytest

from selfsup.train.schedule import (
    Schedule,
    infinite,
    repeated_cosine,
    warmup_cosine,
    warmup_linear,
)


def test_warmup_is_linear_from_zero():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(4, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)


def test_cosine_halfway_and_end():
    # after warmup 10 of 110 steps, step 60 is half the cosine: 0.5 * (1 + cos(pi/2)) = 0.5
    assert warmup_cosine(60, 110, 10) == pytest.approx(0.5)
    assert warmup_cosine(110, 110, 10) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(500, 110, 10, final=0.1) == pytest.approx(0.1)
    assert warmup_cosine(35, 110, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))


def test_linear_decay_by_hand():
    # warmup 10 of 110 steps, then 1 - (t - 10) / 100: 0.75 at 35, 0.5 at 60, 0 at the end
    assert warmup_linear(4, 110, 10) == pytest.approx(0.5)
    assert warmup_linear(10, 110, 10) == pytest.approx(1.0)
    assert warmup_linear(35, 110, 10) == pytest.approx(0.75)
    assert warmup_linear(60, 110, 10) == pytest.approx(0.5)
    assert warmup_linear(110, 110, 10) == 0.0
    assert warmup_linear(500, 110, 10) == 0.0  # past the end: no negative lr


def test_repeated_cosine_restarts_each_stage():
    for step in range(0, 40):
        assert repeated_cosine(step, 20, 4) == warmup_cosine(step % 20, 20, 4)
    assert repeated_cosine(20, 20, 4) == pytest.approx(0.25)  # warmup again: (0 + 1) / 4


def test_infinite_by_hand():
    # warmup 10, cooldown 20 to c = 0.4, anneal over the last 25 of 100 steps
    f = lambda t: infinite(t, 100, 10, 20, constant=0.4, anneal_steps=25)  # noqa: E731
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)  # cooldown starts at the peak
    assert f(20) == pytest.approx(0.4 + 0.6 * 0.5)  # halfway down the cosine: (1 + cos(pi/2)) / 2
    assert f(30) == pytest.approx(0.4)
    assert f(60) == pytest.approx(0.4)
    assert f(75) == pytest.approx(0.4)  # the anneal starts at T - A = 75 ...
    assert f(90) == pytest.approx(0.4 * 10 / 25)  # ... and falls linearly ...
    assert f(100) == 0.0  # ... to zero at the end
    assert infinite(10**6, 10**7, 10, 20, constant=0.4) == 0.4  # no anneal: constant forever


def test_infinite_is_continuous():
    total = 1000
    values = [infinite(t, total, 50, 200, constant=0.3, anneal_steps=150) for t in range(total)]
    jumps = [abs(b - a) for a, b in zip(values[50:], values[51:], strict=False)]
    # after warmup, no step changes the factor by more than the steepest slope allows
    assert max(jumps) <= max(0.7 * math.pi / 2 / 200, 0.3 / 150) + 1e-9
    assert min(values) >= 0.0 and max(values) <= 1.0


def test_schedule_by_name():
    assert Schedule("cosine", 0.1)(5, 100) == warmup_cosine(5, 100, 10)
    assert Schedule("linear", 0.1)(55, 100) == pytest.approx(0.5)
    assert Schedule("repeated-cosine", 0.1)(105, 100) == warmup_cosine(5, 100, 10)
    infinite_schedule = Schedule("infinite", 0.1, constant=0.5, cooldown_fraction=0.2,
                                 anneal_fraction=0.1)
    assert infinite_schedule(5, 100) == infinite(5, 100, 10, 20, 0.5, 10)
    # a continued stage starts on the constant phase: no warmup, no cooldown
    continued = Schedule("infinite", 0.1, constant=0.5, continuing=True)
    assert continued(0, 100) == pytest.approx(0.5)
    assert continued.warmup_steps(100) == 0
    with pytest.raises(ValueError, match="cosine, linear, infinite, repeated-cosine"):
        Schedule("step")
