"""Fixtures shared across test packages."""

from __future__ import annotations

import os

import pytest

# Under pytest-xdist (`pytest -n 2`, the Makefile's `test`) each worker gets one of this
# machine's cores: torch's default of one thread per core in every worker would make them spin
# against each other. The environment carries the setting into subprocesses (CLI, DDP ranks).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

import selfsup  # noqa: E402


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> selfsup.Run:
    """One tiny finished run (SimCLR on digits, 3 epochs, encoder selected by RankMe) with its
    eval.json and report.html, shared by the evaluation, report and monitor tests (~20 s)."""
    run_dir = tmp_path_factory.mktemp("runs") / "simclr-digits"
    return selfsup.pretrain("simclr", "digits", epochs=3, batch_size=128, precision="32",
                            backbone="resnet10w32", seed=0, run_dir=str(run_dir),
                            select_by="rankme")


class Killed(Exception):
    """Stands for a SIGKILL right after a checkpoint (tests/train/test_kill_resume.py does it
    for real, in subprocesses)."""


@pytest.fixture
def kill_after(monkeypatch):
    """``kill_after(step)``: the next pretraining checkpoints at every step and dies with
    `Killed` once ``step`` is saved; later runs (the resume) are left alone."""
    from selfsup.train import run as run_module

    def arm(step: int) -> type[Killed]:
        class KilledAfter(run_module.PeriodicCheckpoint):
            def on_train_batch_end(self, trainer, *args) -> None:
                super().on_train_batch_end(trainer, *args)
                if trainer.global_step == step:
                    monkeypatch.undo()  # only this run dies
                    raise Killed

        monkeypatch.setattr(run_module, "PeriodicCheckpoint", KilledAfter)
        return Killed

    return arm


def losses_of(run_dir) -> dict[int, float]:
    """step -> loss from a run's metrics.jsonl, each step logged once, resumed or not."""
    import json

    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert len(steps) == len(set(steps)), "each step is logged once"
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.fixture(scope="session")
def logged_losses():
    """`losses_of` for tests in any folder (a `from conftest import` would meet the nearest
    conftest.py instead)."""
    return losses_of


@pytest.fixture(scope="session")
def untrained_knn():
    """``untrained_knn(method, **options)``: kNN top-1 on digits of the encoder a
    ``selfsup.pretrain(method, "digits", **options)`` run starts from (the same seed and build,
    before any step): the bar a trained encoder must clear, since an untrained one is already
    far above chance on digits (resnet10w32 0.65, a narrow ViT 0.44)."""
    from selfsup.data.sources import load_source
    from selfsup.evaluate.suite import evaluate_encoder
    from selfsup.guard import untrained_encoder
    from selfsup.train.config import PretrainConfig

    digits = load_source("digits")

    def knn(method: str, **options) -> float:
        config = PretrainConfig(method=method, data="digits", **options)
        return evaluate_encoder(untrained_encoder(config, digits), digits, ("knn",))["knn_top1"]

    return knn


@pytest.fixture(scope="session", autouse=True)
def baseline_cache(tmp_path_factory):
    """The raw-input kNN cache (evaluate/baseline_cache.py) of this test session, never the
    user's ~/.cache; set in the environment, so subprocesses and DDP workers share it."""
    import os

    where = tmp_path_factory.mktemp("selfsup-cache")
    before = os.environ.get("SELFSUP_CACHE")
    os.environ["SELFSUP_CACHE"] = str(where)
    yield where
    if before is None:
        os.environ.pop("SELFSUP_CACHE", None)
    else:
        os.environ["SELFSUP_CACHE"] = before
