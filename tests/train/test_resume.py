"""Resuming continues the step count, the schedule and the optimizer state."""

import json

import pytest

import selfsup
from selfsup.methods.simclr import SimCLR
from selfsup.rundir import load_checkpoint_safely
from selfsup.train.schedule import warmup_cosine


def _steps(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "epoch_end" in r]


def test_resume_continues_where_it_stopped(tmp_path):
    run_dir = tmp_path / "run"
    selfsup.pretrain("simclr", "digits", epochs=1, batch_size=128, precision="32", seed=0,
                     run_dir=str(run_dir), evaluate_after=False, log_every=1)
    ckpt = load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 14  # 1797 // 128
    momentum = ckpt["optimizer_states"][0]["state"]
    assert momentum, "optimizer state is saved"
    run = selfsup.pretrain(resume=str(run_dir), evaluate_after=False, epochs=2)
    assert run.steps == 28
    assert _steps(run_dir) == [14, 28]
    resumed = load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")
    assert resumed["selfsup"]["total_steps"] == 28
    # the lr schedule continued from step 14, not from a new warmup
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in rows if "lr" in r}
    base = SimCLR.recipe.lr * 128 / 256  # the recipe's lr, scaled to batch 128
    for step in range(15, 28):
        # the extended run follows the schedule of 28 steps (warmup 5% = 1 step) from step 15 on
        assert lrs[step] == pytest.approx(base * warmup_cosine(step, 28, 1))
