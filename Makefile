# Each target sets itself up on a fresh machine through ./setup.sh (idempotent).
.PHONY: setup pretrain test guard lint clean

setup:
	./setup.sh

pretrain: setup
	.venv/bin/selfsup pretrain

# one pytest-xdist worker per core (at most 4: each holds its own torch), one torch thread each
# (tests/conftest.py); on 2 Zen 4 cores (AVX-512 + bf16) 273-302 s of test time (2026-12-07)
test: setup
	.venv/bin/python -m pytest -q -n auto --maxprocesses 4

# the learning guard (selfsup/guard.py): every method trains its pinned steps on digits and must
# stand where its status says (ready: above its untrained encoder); CI's own step after `test`
guard: setup
	.venv/bin/python -m pytest -q -n auto --maxprocesses 4 -m guard tests/methods/test_methods.py

lint: setup
	.venv/bin/ruff check src tests benchmarks

clean:
	rm -rf runs .pytest_cache
