import math

import pytest

from selfsup.train.schedule import warmup_cosine


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
