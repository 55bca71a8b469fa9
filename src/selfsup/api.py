"""The Python surface: pretrain, load, evaluate, embed (reports: `selfsup.report`)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from .backbones.io import load_encoder
from .data import load_source
from .evaluate import DEFAULT_PROTOCOLS, evaluate_encoder, load_projector, parse_preprocessing
from .evaluate.embed import check_output, embed_source, write_embeddings
from .evaluate.suite import check_protocols
from .report import write_report
from .train import ConfigError, PretrainConfig, pretrain_run
from .train.callbacks import has_bf16
from .train.checkpoint_io import atomic_write

DEFAULT_BUDGET = "10m"


@dataclass
class Run:
    dir: Path
    eval: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    images_per_s: float = 0.0
    is_global_zero: bool = True  # False in the other processes of a DDP run


def load(run_dir: str | Path) -> nn.Module:
    """The encoder of a run (eval mode); its preprocessing is ``encoder.preprocessing``."""
    return load_encoder(run_dir)


def evaluate(encoder: nn.Module | str | Path, data: str | None = None,
             protocols: list[str] | tuple[str, ...] = DEFAULT_PROTOCOLS,
             k: int = 200, temperature: float = 0.1,
             preprocessing: str | None = None) -> dict[str, Any]:
    """Evaluate an encoder (or a run directory) on a source; the run's own data by default.

    ``protocols``: any of knn, linear, nb, fewshot, layers, rankme, raw_knn. Features always go
    through the encoder's own preprocessing; ``preprocessing`` overrides it (``"none"`` or
    ``"size=32,mean=0.5,std=0.5"``, see `parse_preprocessing`) to measure what a mismatch costs.

    Given a run directory, results on its own data with its own preprocessing are merged into
    its ``eval.json`` (keys of protocols not run this time are kept); results on other data or
    with an override go to ``eval-<data>[-<override>].json`` beside it.
    """
    check_protocols(protocols)
    run_dir = None
    own_data = None
    if not isinstance(encoder, nn.Module):
        run_dir = Path(encoder)
        encoder = load_encoder(run_dir)
        own_data = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]
        data = data or own_data
    if data is None:
        raise ValueError("give data= to evaluate a bare encoder")
    own = encoder.preprocessing
    pre = None
    if preprocessing is not None:
        native = load_source(data, channels=own.channels).image_size
        pre = parse_preprocessing(preprocessing, own, native_size=native)
    size = (pre or own).input_size
    source = load_source(data, channels=own.channels, image_size=size)
    projector = load_projector(run_dir, encoder) if run_dir and "layers" in protocols else None
    results = evaluate_encoder(encoder, source, protocols, k, temperature, bf16=has_bf16(),
                               preprocessing=pre, projector=projector)
    if run_dir is not None:
        if data == own_data and not results["preprocessing_overridden"]:
            path = run_dir / "eval.json"
            previous = json.loads(path.read_text()) if path.is_file() else {}
            results = {**previous, **results}
        else:
            tag = "-".join(filter(None, [Path(str(data)).name, preprocessing]))
            path = run_dir / f"eval-{re.sub(r'[^A-Za-z0-9._=-]+', '_', tag)}.json"
        atomic_write(path, lambda f: f.write(json.dumps(results, indent=2).encode()))
        path.chmod(0o644)
        results["written_to"] = str(path)
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
              images_per_s=result.images_per_s, is_global_zero=result.is_global_zero)
    if evaluate_after and run.is_global_zero:
        protocols = [*config.eval_protocols, "raw_knn"]
        run.eval = evaluate(result.dir, data=config.data, protocols=protocols)
        try:
            write_report(result.dir)
        except Exception as e:  # the run and its scores are saved; a plot must not lose them
            logging.getLogger("selfsup").warning(
                "selfsup: report.html not written (%s); retry with `selfsup report %s`",
                e, result.dir)
    return run


def embed(run_dir: str | Path, out: str | Path, data: str | None = None,
          split: str = "all") -> list[Path]:
    """Embed a source (the run's own data by default) with the run's encoder, through its own
    preprocessing, and write ``out`` (``.npy`` + sidecars, or ``.parquet``); returns the files.
    ``split``: all (train then test), train or test."""
    check_output(out)
    run_dir = Path(run_dir)
    encoder = load_encoder(run_dir)
    data = data or yaml.safe_load((run_dir / "config.yaml").read_text())["data"]
    pre = encoder.preprocessing
    source = load_source(data, channels=pre.channels, image_size=pre.input_size)
    table = embed_source(encoder, source, split, bf16=has_bf16())
    meta = {"run": str(run_dir), "data": str(data), "preprocessing": pre.to_dict()}
    return write_embeddings(table, out, meta)
