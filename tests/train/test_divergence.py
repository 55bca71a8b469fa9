"""A non-finite loss stops the run at once, names the step, and leaves the last checkpoint good."""

import hashlib

import pytest
import torch

import selfsup
from selfsup.cli import EXIT_FAILED, main
from selfsup.methods.simclr import SimCLR
from selfsup.rundir import load_checkpoint_safely
from selfsup.train.module import TrainingDiverged

NAN_FROM = 35  # digits at batch 64: 28 steps an epoch, so last.ckpt holds step 28


@pytest.fixture
def nan_after_step(monkeypatch):
    calls = {"n": 0}
    loss_of = SimCLR.training_loss

    def poisoned(self, images, **kwargs):
        out = loss_of(self, images, **kwargs)
        calls["n"] += 1
        if calls["n"] > NAN_FROM:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(SimCLR, "training_loss", poisoned)


def test_nan_loss_stops_with_step_and_advice(tmp_path, nan_after_step):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(TrainingDiverged) as e:
        selfsup.pretrain("simclr", "digits", epochs=3, batch_size=64, precision="32",
                         run_dir=str(run_dir), evaluate_after=False, checkpoint_every_s=1e9)
    message = str(e.value)
    assert f"step {NAN_FROM}" in message
    assert "learning rate" in message and "warmup" in message
    assert "largest |weight|" in message and "--precision 32" not in message  # fp32 already
    ckpt = load_checkpoint_safely(last)
    assert ckpt["global_step"] == 28  # the epoch-end checkpoint, not one of the NaN weights
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values()
               if v.is_floating_point())
    assert not (run_dir / "encoder.safetensors").exists()  # no encoder from a diverged run


def test_cli_exits_non_zero_with_one_line(tmp_path, nan_after_step, capsys):
    run_dir = tmp_path / "run"
    code = main(["pretrain", "--data", "digits", "--epochs", "3", "--batch-size", "64",
                 "--precision", "32", "--run-dir", str(run_dir), "--no-progress", "--no-eval"])
    assert code == EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("selfsup:")]
    assert len(lines) == 1 and f"step {NAN_FROM}" in lines[0], err
    before = hashlib.sha256((run_dir / "checkpoints" / "last.ckpt").read_bytes()).hexdigest()
    # resuming replays the same NaN: the good checkpoint is still not overwritten
    assert main(["pretrain", "--resume", str(run_dir), "--no-progress", "--no-eval"]) == 1
    after = hashlib.sha256((run_dir / "checkpoints" / "last.ckpt").read_bytes()).hexdigest()
    assert before == after


def test_reduced_precision_run_also_suggests_fp32(tmp_path, nan_after_step):
    """Under bf16 the advice adds the fp32 way out: a step can overflow with modest weights."""
    with pytest.raises(TrainingDiverged) as e:
        selfsup.pretrain("simclr", "digits", epochs=3, batch_size=64, precision="bf16",
                         run_dir=str(tmp_path / "run"), evaluate_after=False,
                         checkpoint_every_s=1e9)
    message = str(e.value)
    assert f"step {NAN_FROM}" in message and "bf16" in message
    assert "--precision 32" in message and "learning rate" in message
