"""Pretraining end to end: source -> views -> method -> Lightning -> run directory."""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import yaml
from torch.utils.data import DataLoader

from ..backbones import build_backbone
from ..backbones.io import save_encoder
from ..data import DataSource, load_source
from ..methods import get_method
from ..views import TwoCropViews, ViewConfig
from .callbacks import MetricsLog, PeriodicCheckpoint, TimeBudget, has_bf16
from .checkpoint_io import AtomicCheckpointIO
from .config import ConfigError, PretrainConfig
from .module import PretrainModule
from .progress import PretrainProgressBar

CONFIG, METRICS, LAST = "config.yaml", "metrics.jsonl", "checkpoints/last.ckpt"


@dataclass
class PretrainResult:
    dir: Path
    steps: int
    epochs: int
    seconds: float
    images_per_s: float


def channel_stats(source: DataSource, max_images: int = 10_000) -> tuple[tuple, tuple]:
    """Per-channel mean and std of the training images (a sample of them for big sources)."""
    split = source.train
    if split.images is not None:
        idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:max_images]
        x = split.images[idx].float() / 255.0
    else:
        n = min(len(split), 512)
        items = [split.dataset[i] for i in range(n)]
        x = torch.stack([it[0] for it in items if it is not None]).float() / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def default_run_dir(config: PretrainConfig) -> Path:
    data = Path(config.data).name if os.sep in config.data else config.data
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.method}-{data}-{stamp}"


def resolve_precision(config: PretrainConfig) -> str:
    if config.precision == "32":
        return "32-true"
    if config.precision == "bf16" or has_bf16():
        return "bf16-mixed"
    return "32-true"


def build_method(config: PretrainConfig, source: DataSource):
    cls = get_method(config.method)
    mean, std = channel_stats(source)
    backbone = build_backbone(config.backbone, channels=source.channels,
                              input_size=source.image_size, mean=mean, std=std)
    backbone = backbone.to(memory_format=torch.channels_last)
    views = TwoCropViews(backbone.preprocessing,
                         ViewConfig(**{**cls.recipe.views.to_dict(), **config.views}))
    return cls(backbone, views, **config.method_args)


def pretrain_run(config: PretrainConfig, resume: bool = False, progress: bool = True
                 ) -> PretrainResult:
    """Train ``config`` into its run directory; with ``resume``, continue from last.ckpt."""
    config.validate()
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    config.run_dir = str(run_dir)
    last = run_dir / LAST
    if resume and not last.is_file():
        raise ConfigError(f"nothing to resume: {last} does not exist")
    if not resume and last.is_file():
        raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or another "
                          "--run-dir")
    L.seed_everything(config.seed, workers=True, verbose=False)
    source = load_source(config.data, channels=config.channels, image_size=config.image_size)
    world = config.devices * config.num_nodes
    per_device = config.batch_size // world
    if per_device > len(source.train) // world:
        raise ConfigError(f"batch size {config.batch_size} is larger than the "
                          f"{len(source.train)} training images; use --batch-size "
                          f"{max(2, len(source.train))} or fewer")
    method = build_method(config, source)
    recipe = method.recipe
    optimizer = config.optimizer or recipe.optimizer
    lr = (config.lr if config.lr is not None else recipe.lr) * config.batch_size / 256
    wd = config.weight_decay if config.weight_decay is not None else recipe.weight_decay
    warmup = (config.warmup_fraction if config.warmup_fraction is not None
              else recipe.warmup_fraction)

    in_memory = source.train.images is not None
    workers = config.num_workers if config.num_workers is not None else (
        0 if in_memory else min(4, os.cpu_count() or 1))
    loader = DataLoader(source.train.dataset, batch_size=per_device, shuffle=True, drop_last=True,
                        num_workers=workers, collate_fn=source.train.collate_fn,
                        persistent_workers=workers > 0)
    steps_per_epoch = len(source.train) // config.batch_size
    budget = config.budget_seconds
    if config.epochs is not None:
        total = config.epochs * steps_per_epoch
    else:
        total = 10 * steps_per_epoch  # provisional: TimeBudget sizes it after measuring
    module = PretrainModule(method, optimizer, lr, wd, warmup, total, config.batch_size,
                            provisional_total=config.epochs is None)

    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = config.to_dict() | {"resolved": {
        "optimizer": optimizer, "lr_scaled": lr, "weight_decay": wd, "warmup_fraction": warmup,
        "precision": resolve_precision(config), "views": method.views.config.to_dict(),
        "method_args": {**method.hparams(), **config.method_args},
        "preprocessing": method.backbone.preprocessing.to_dict(),
    }}
    if not resume:
        (run_dir / CONFIG).write_text(yaml.safe_dump(resolved, sort_keys=False))

    callbacks: list[L.Callback] = [
        MetricsLog(run_dir / METRICS, config.log_every),
        PeriodicCheckpoint(last, config.checkpoint_every_s),
    ]
    if budget is not None:
        callbacks.insert(0, TimeBudget(budget, calibrate_at=25 if config.epochs is None else 10**9))
    if progress:
        callbacks.append(PretrainProgressBar(leave=True))
    world_strategy = "ddp" if world > 1 else "auto"
    # Lightning's start-up banner (device list, tips) is noise next to our own summary
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    trainer = L.Trainer(
        accelerator="auto", devices=config.devices, num_nodes=config.num_nodes,
        strategy=world_strategy, precision=resolve_precision(config),
        max_epochs=config.epochs if config.epochs is not None else -1,
        logger=False, enable_checkpointing=False, enable_model_summary=False,
        enable_progress_bar=progress, num_sanity_val_steps=0, callbacks=callbacks,
        plugins=[AtomicCheckpointIO()], log_every_n_steps=config.log_every,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # Lightning's advice is for GPU input pipelines; ours is batched on the device already
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
        trainer.fit(module, loader, ckpt_path=str(last) if resume else None)
    seconds = time.perf_counter() - t0
    if trainer.is_global_zero:
        save_encoder(method.backbone, run_dir, {"method": config.method,
                                                "steps": trainer.global_step})
    return PretrainResult(run_dir, trainer.global_step, trainer.current_epoch, seconds,
                          module.images_per_s)
