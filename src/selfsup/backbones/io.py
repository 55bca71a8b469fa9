"""Encoders on disk: ``encoder.safetensors`` (weights) + ``encoder.json`` (the registered
backbone's name and config, and its preprocessing). Nothing is unpickled when loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from ..rundir import DamagedFile, RunDir, atomic_write, atomic_write_text
from . import backbone_from_config


def save_encoder(backbone: nn.Module, run_dir: str | Path,
                 extra: dict[str, Any] | None = None) -> None:
    run = RunDir(run_dir)
    # channels_last weights are strided views; safetensors wants plain contiguous tensors
    state = {k: v.detach().contiguous().cpu() for k, v in backbone.state_dict().items()}
    atomic_write(run.weights, lambda f: f.write(save(state)))
    meta = {"backbone": backbone.config, "dim": backbone.dim,
            "preprocessing": backbone.preprocessing.to_dict(), **(extra or {})}
    atomic_write_text(run.meta, json.dumps(meta, indent=2))


def load_encoder(run_dir: str | Path) -> nn.Module:
    """The encoder of a run, in eval mode, with ``.preprocessing`` set."""
    run = RunDir(run_dir)
    for p in (run.meta, run.weights):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: is {run_dir} a finished selfsup run?")
    try:
        meta = json.loads(run.meta.read_text())
        encoder = backbone_from_config(meta["backbone"], meta["preprocessing"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DamagedFile(f"{run.meta} is damaged ({type(e).__name__}: {e}); the weights in "
                          f"{run.weights} cannot be rebuilt without it") from None
    try:
        state = load_file(str(run.weights))
    except (SafetensorError, OSError) as e:
        raise DamagedFile(f"{run.weights} is damaged or truncated ({e}); the run's "
                          f"checkpoints ({run.checkpoints}) still hold the weights") from None
    encoder.load_state_dict(state)
    return encoder.eval()
