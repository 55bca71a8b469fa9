"""`selfsup pretrain --devices N` through Lightning DDP (gloo on CPU), and its guard rails."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import selfsup
from selfsup.cli import EXIT_USAGE, main
from selfsup.data import load_source
from selfsup.evaluate.suite import evaluate_encoder
from selfsup.guard import MARGIN, untrained_encoder
from selfsup.rundir import load_checkpoint_safely
from selfsup.train.config import PretrainConfig
from selfsup.train.run import build_trainer


@pytest.mark.parametrize("sync", [False, True])
def test_sync_batchnorm_option_converts_batch_norm(sync):
    config = PretrainConfig(devices=2, sync_batchnorm=sync, run_dir="unused").validate()
    trainer = build_trainer(config, [], progress=False)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(4)))
    layer_sync = trainer.strategy._layer_sync  # what Lightning applies when DDP sets up
    if not sync:
        # the default: each process normalizes with the statistics of its own batch
        assert layer_sync is None
        return
    converted = layer_sync.apply(model)
    kinds = [type(m) for m in converted.modules()]
    assert kinds.count(nn.SyncBatchNorm) == 2 and nn.BatchNorm2d not in kinds


def test_more_devices_than_the_machine_has(tmp_path, capsys):
    code = main(["pretrain", "--data", "digits", "--devices", "4096", "--batch-size", "8192",
                 "--run-dir", str(tmp_path / "r"), "--no-progress"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--devices 4096" in err and ("CPU cores" in err or "GPU" in err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="SyncBatchNorm runs on GPUs")
def test_sync_batchnorm_on_cpu_is_refused(tmp_path, capsys):
    code = main(["pretrain", "--data", "digits", "--sync-batchnorm", "--run-dir",
                 str(tmp_path / "r"), "--no-progress"])
    assert code == EXIT_USAGE and "CUDA only" in capsys.readouterr().err


def test_ddp_needs_a_shared_run_dir(capsys):
    assert main(["pretrain", "--data", "digits", "--devices", "2", "--no-progress"]) == EXIT_USAGE
    assert "--run-dir" in capsys.readouterr().err


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPU cores for 2 processes")
def test_two_process_pretrain_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "selfsup.cli", "pretrain", "--data", "digits", "--devices", "2",
         "--epochs", "1", "--batch-size", "64", "--precision", "32", "--run-dir", str(run_dir),
         "--no-progress"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stdout.count("selfsup run:") == 1  # rank 0 alone evaluates and reports
    # the global batch of 64 is split 32 + 32: the same 28 steps an epoch as one process
    assert load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 28
    assert (run_dir / "encoder.safetensors").is_file() and (run_dir / "config.yaml").is_file()
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "epoch_end" in r] == [28]
    ev = json.loads((run_dir / "eval.json").read_text())
    # the bar is the encoder it started from, not chance: an untrained ResNet's features are
    # already far above chance on digits
    config = PretrainConfig(data="digits", batch_size=64, precision="32", devices=2,
                            run_dir=str(run_dir))
    before = evaluate_encoder(untrained_encoder(config, load_source("digits")), load_source(
        "digits"), ("knn",), k=ev["knn"]["k"])["knn_top1"]
    assert ev["knn_top1"] > before + MARGIN, (before, ev["knn_top1"])
    assert torch.isfinite(torch.tensor(ev["rankme"]))
    # the compute is summed over both processes: a step of 32 + 32 counts what one process's
    # step of 64 counts
    trained = ev["training"]
    assert trained["processes"] == 2 and trained["steps"] == 28
    one = selfsup.pretrain("simclr", "digits", steps=1, batch_size=64, precision="32",
                           run_dir=str(tmp_path / "one"), evaluate_after=False, rankme_samples=0)
    assert trained["flops_per_step"] == pytest.approx(one.training["flops_per_step"], rel=1e-6)
    assert trained["compute_flops"] == pytest.approx(28 * trained["flops_per_step"])


def test_two_process_masked_pretrain_end_to_end(tmp_path):
    # MMC under two real DDP processes: its losses all-reduce their normalizers
    # (`distributed.rank_mean`) and gather the teacher's keys, so every rank must reach the same
    # collectives in the same order each step; a mismatch hangs or fails here
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "selfsup.cli", "pretrain", "--method", "mmc", "--data", "digits",
         "--classes", "0-1", "--devices", "2", "--epochs", "1", "--batch-size", "32",
         "--precision", "32", "--run-dir", str(run_dir), "--no-progress"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # 360 images of classes 0 and 1, global batch 32: the 11 steps of one process
    assert load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 11
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert (run_dir / "encoder.safetensors").is_file()
