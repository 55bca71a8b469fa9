"""SIGKILL a real pretraining twice (once mid-write of a checkpoint), resume, and get the run an
uninterrupted one would have given: same steps, same losses, a loadable checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import selfsup
from selfsup.rundir import PAUSE_ENV, load_checkpoint_safely

OPTIONS = {"epochs": 2, "batch_size": 64, "precision": "32", "seed": 0, "log_every": 1,
           "checkpoint_every_s": 0.5, "ema": 0.9}  # digits: 28 steps an epoch, 56 in all
TOTAL = 56


def launch(run_dir: Path, config: Path, resume: bool, env: dict | None = None):
    args = ["--resume", str(run_dir)] if resume else [
        "--data", "digits", "--config", str(config), "--run-dir", str(run_dir)]
    return subprocess.Popen([sys.executable, "-m", "selfsup.cli", "pretrain", *args,
                             "--no-progress", "--no-eval"], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, proc, timeout=600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.02)


def logged_step(run_dir: Path) -> int:
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return max(json.loads(x)["step"] for x in lines[:-1]) if len(lines) > 1 else -1
    except (FileNotFoundError, ValueError):
        return -1


def kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()


def test_killed_twice_then_resumed_equals_uninterrupted(tmp_path, logged_losses):
    reference = tmp_path / "reference"
    selfsup.pretrain("simclr", "digits", run_dir=str(reference), evaluate_after=False,
                     **OPTIONS)
    expected = logged_losses(reference)
    assert max(expected) == TOTAL

    config = tmp_path / "run.yaml"
    config.write_text(json.dumps({k: v for k, v in OPTIONS.items()}))
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"

    # kill 1: mid-epoch, some steps after a checkpoint
    proc = launch(run_dir, config, resume=False)
    wait_for(lambda: last.is_file() and logged_step(run_dir) >= 20, proc)
    kill(proc)
    first = load_checkpoint_safely(last)["global_step"]
    assert 0 < first < TOTAL

    # kill 2: while the resumed run writes a checkpoint (paused between temp file and rename)
    proc = launch(run_dir, config, resume=True, env={PAUSE_ENV: "60"})
    temps = lambda: list(last.parent.glob(".last.ckpt.*.tmp"))  # noqa: E731
    wait_for(lambda: bool(temps()), proc)
    time.sleep(0.2)  # the temp file is being written or already whole: kill it either way
    kill(proc)
    assert temps(), "the kill left the temp file, not a torn last.ckpt"
    second = load_checkpoint_safely(last)["global_step"]  # the previous checkpoint, intact
    assert first <= second < TOTAL

    proc = launch(run_dir, config, resume=True)
    try:
        _, err = proc.communicate(timeout=900)  # minutes only on a crowded machine
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert not temps(), "the stale temp file is cleaned up on resume"
    final = load_checkpoint_safely(last)
    assert final["global_step"] == TOTAL
    got = logged_losses(run_dir)
    assert sorted(got) == sorted(expected)
    # model, optimizer, schedule, data order and RNG all continued: the very same losses
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-5, abs=1e-6), step
    # --ema's average continued from the checkpoints too: the same exported encoder
    for name in ("encoder.safetensors", "online-encoder/encoder.safetensors"):
        want, have = load_file(reference / name), load_file(run_dir / name)
        for k in want:
            assert torch.allclose(have[k], want[k], rtol=1e-5, atol=1e-6), (name, k)
