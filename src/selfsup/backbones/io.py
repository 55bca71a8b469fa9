"""Encoders on disk: ``encoder.safetensors`` (weights) + ``encoder.json`` (architecture and
preprocessing). Nothing is unpickled when loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from . import backbone_from_config

WEIGHTS, META = "encoder.safetensors", "encoder.json"


def save_encoder(backbone: nn.Module, run_dir: str | Path,
                 extra: dict[str, Any] | None = None) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # channels_last weights are strided views; safetensors wants plain contiguous tensors
    state = {k: v.detach().contiguous().cpu() for k, v in backbone.state_dict().items()}
    tmp = run_dir / f".{WEIGHTS}.tmp"
    save_file(state, str(tmp))
    tmp.replace(run_dir / WEIGHTS)
    meta = {"backbone": backbone.config, "dim": backbone.dim,
            "preprocessing": backbone.preprocessing.to_dict(), **(extra or {})}
    tmp = run_dir / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(run_dir / META)


def load_encoder(run_dir: str | Path) -> nn.Module:
    """The encoder of a run, in eval mode, with ``.preprocessing`` set."""
    run_dir = Path(run_dir)
    meta_path, weights_path = run_dir / META, run_dir / WEIGHTS
    for p in (meta_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: is {run_dir} a finished selfsup run?")
    meta = json.loads(meta_path.read_text())
    encoder = backbone_from_config(meta["backbone"], meta["preprocessing"])
    encoder.load_state_dict(load_file(str(weights_path)))
    return encoder.eval()
