"""Checkpoints never run code when loaded; encoders load through safetensors only."""

import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml

import selfsup
from selfsup.cli import EXIT_USAGE, main
from selfsup.rundir import CheckpointRefused, load_checkpoint_safely
from selfsup.train.config import PretrainConfig


class Payload:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_run(run_dir: Path, marker: Path) -> Path:
    (run_dir / "checkpoints").mkdir(parents=True)
    config = PretrainConfig(data="digits", epochs=1, batch_size=64, run_dir=str(run_dir))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {}, "global_step": 3, "hook": Payload(marker)}, ckpt)
    return ckpt


def test_the_payload_is_real(tmp_path):
    # the control: a plain unpickle does run it, so the refusals below are meaningful
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


def test_loader_refuses_code_in_a_checkpoint(tmp_path):
    marker = tmp_path / "ran"
    ckpt = malicious_run(tmp_path / "run", marker)
    with pytest.raises(CheckpointRefused, match="could run code"):
        load_checkpoint_safely(ckpt)
    assert not marker.exists()


def test_resume_refuses_it_with_one_line(tmp_path, capsys):
    marker = tmp_path / "ran"
    malicious_run(tmp_path / "run", marker)
    assert main(["pretrain", "--resume", str(tmp_path / "run"), "--no-progress"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "refusing to load" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_init_from_refuses_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    malicious_run(tmp_path / "old", marker)
    code = main(["pretrain", "--data", "digits", "--init-from", str(tmp_path / "old"),
                 "--run-dir", str(tmp_path / "new"), "--epochs", "1", "--no-progress"])
    assert code == EXIT_USAGE and "refusing to load" in capsys.readouterr().err
    assert not marker.exists()


def test_load_never_calls_torch_load(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    selfsup.pretrain("simclr", "digits", epochs=1, batch_size=256, precision="32",
                     run_dir=str(run_dir), evaluate_after=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load called while loading an encoder")

    monkeypatch.setattr(torch, "load", forbidden)
    encoder = selfsup.load(run_dir)
    assert encoder(torch.zeros(2, 1, 8, 8)).shape[0] == 2
