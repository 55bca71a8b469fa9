# Each target sets itself up on a fresh machine through ./setup.sh (idempotent).
.PHONY: setup pretrain test test-slow lint clean

setup:
	./setup.sh

pretrain: setup
	.venv/bin/selfsup pretrain

test: setup
	.venv/bin/python -m pytest -q

test-slow: setup
	.venv/bin/python -m pytest -q -m slow

lint: setup
	.venv/bin/ruff check src tests benchmarks

clean:
	rm -rf runs .pytest_cache
