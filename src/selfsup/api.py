"""The Python surface: pretrain, load, evaluate."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from .backbones.io import load_encoder
from .data import load_source
from .evaluate import evaluate_encoder
from .train import ConfigError, PretrainConfig, pretrain_run
from .train.callbacks import has_bf16

DEFAULT_BUDGET = "10m"


@dataclass
class Run:
    dir: Path
    eval: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    images_per_s: float = 0.0


def load(run_dir: str | Path) -> nn.Module:
    """The encoder of a run (eval mode); its preprocessing is ``encoder.preprocessing``."""
    return load_encoder(run_dir)


def evaluate(encoder: nn.Module | str | Path, data: str | None = None,
             protocols: list[str] | tuple[str, ...] = ("knn", "linear", "rankme", "raw_knn"),
             k: int = 200, temperature: float = 0.1) -> dict[str, Any]:
    """Evaluate an encoder (or a run directory) on a source; the run's own data by default.

    Given a run directory, results are also written to its ``eval.json``.
    """
    run_dir = None
    if not isinstance(encoder, nn.Module):
        run_dir = Path(encoder)
        if data is None:
            cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
            data = cfg["data"]
        encoder = load_encoder(run_dir)
    if data is None:
        raise ValueError("give data= to evaluate a bare encoder")
    pre = encoder.preprocessing
    source = load_source(data, channels=pre.channels, image_size=pre.input_size)
    results = evaluate_encoder(encoder, source, protocols, k, temperature, bf16=has_bf16())
    if run_dir is not None:
        tmp = run_dir / ".eval.json.tmp"
        tmp.write_text(json.dumps(results, indent=2))
        tmp.replace(run_dir / "eval.json")
    return results


def pretrain(method: str = "simclr", data: str = "fashion-mnist", *, resume: str | None = None,
             progress: bool = False, evaluate_after: bool = True, **options: Any) -> Run:
    """Pretrain and (by default) evaluate; returns the run. Options are `PretrainConfig` fields.

    ``resume=RUN_DIR`` continues that run from its last checkpoint with its saved config.
    """
    if resume is not None:
        config_path = Path(resume) / "config.yaml"
        if not config_path.is_file():
            raise ConfigError(f"nothing to resume: {config_path} does not exist")
        saved = yaml.safe_load(config_path.read_text())
        saved.pop("resolved", None)
        config = PretrainConfig.from_dict(saved)
        config.run_dir = str(resume)
        extendable = {"epochs", "time_budget"}
        changed = sorted(k for k in options if k not in extendable)
        if changed:
            raise ConfigError(f"a resumed run keeps its config; only {sorted(extendable)} can "
                              f"change (got {changed})")
        for k, v in options.items():
            setattr(config, k, v)
    else:
        config = PretrainConfig.from_dict({"method": method, "data": data, **options})
        if config.epochs is None and config.time_budget is None:
            config.time_budget = DEFAULT_BUDGET
    result = pretrain_run(config, resume=resume is not None, progress=progress)
    run = Run(result.dir, steps=result.steps, seconds=result.seconds,
              images_per_s=result.images_per_s)
    if evaluate_after:
        protocols = [*config.eval_protocols, "raw_knn"]
        run.eval = evaluate(result.dir, data=config.data, protocols=protocols)
    return run
