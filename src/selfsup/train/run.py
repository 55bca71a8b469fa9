"""Pretraining end to end: source -> views -> method -> Lightning -> run directory."""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

from ..backbones import TablePreprocessing, build_backbone, build_table_backbone, get_backbone
from ..backbones.io import save_encoder
from ..data import DataSource, load_source
from ..data.batch import WithIndices, collate_batch
from ..data.classes import select_classes
from ..data.guided import GuidedBatchSampler, pseudo_labels
from ..data.shard_stream import ShardBatches
from ..data.shards import ShardSamples
from ..data.spec import channel_stats, describe
from ..data.table import align_table
from ..hardware import has_bf16, use_compile_cache
from ..methods import METHODS, Method, get_method
from ..rundir import (
    DamagedFile,
    RunDir,
    checkpoint_step,
    load_checkpoint_safely,
    remove_stale_temps,
)
from ..views import ViewConfig, build_views
from .callbacks import MetricsLog, PeriodicCheckpoint, TimeBudget
from .checkpoint_io import AtomicCheckpointIO
from .compute import ComputeMeter
from .config import ConfigError, PretrainConfig
from .data_order import DataOrder, ShardedShuffle
from .ema import EncoderEMA
from .module import PretrainModule
from .products import product_monitors
from .progress import PretrainProgressBar
from .schedule import Schedule
from .trackers import log_config, open_loggers


@dataclass
class PretrainResult:
    dir: Path
    steps: int
    epochs: int
    seconds: float
    images_per_s: float
    is_global_zero: bool = True
    training: dict | None = None  # `training_record`


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


def init_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint ``--init-from`` starts from: an infinite-schedule run's pre-anneal weights
    (the constant phase continues from there), else its last checkpoint."""
    run = RunDir(run_dir)
    for path in (run.constant, run.last):
        if path.is_file():
            return path
    raise ConfigError(f"cannot start from {run_dir}: it has no "
                      f"{run.last.relative_to(run.path)}")


def check_resumable(run: RunDir) -> None:
    """Load last.ckpt once before any work (Lightning would load it deep inside ``fit``), so a
    damaged one is one line naming it and what is left to resume from."""
    try:
        load_checkpoint_safely(run.last)
    except DamagedFile as e:
        step = checkpoint_step(run.constant) if run.constant.is_file() else None
        left = (f"{run.constant} (step {step}) is whole: copy it over {run.last.name} to resume "
                "from there, or start again with another --run-dir" if step is not None else
                "no other checkpoint to resume from: start again with another --run-dir")
        raise DamagedFile(f"cannot resume {run.path}: {e}; {left}") from None


def init_stats(run_dir: str | Path) -> tuple[tuple, tuple]:
    """The normalization of the run we start from: the encoder keeps its own preprocessing."""
    path = RunDir(run_dir).config
    try:
        pre = yaml.safe_load(path.read_text())["resolved"]["preprocessing"]
        return tuple(pre["mean"]), tuple(pre["std"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        raise ConfigError(f"cannot start from {run_dir}: {path} is missing or holds no "
                          "resolved preprocessing") from None


def _same_family(name: str, other: str) -> bool:
    try:
        return get_backbone(name).family == get_backbone(other).family
    except ValueError:  # "default" or unknown: build_backbone names the error
        return False


def build_method(config: PretrainConfig, source: DataSource) -> Method:
    """The method ``config`` names, with its backbone (the config's, else its recipe's), the
    views its recipe names (overridden by ``config.views``) and a description of the data.
    A table's preprocessing is fitted on its training split (``--init-from`` keeps that run's)."""
    cls = get_method(config.method)
    spec = describe(source)
    if spec.modality not in cls.modalities:
        fits = sorted(n for n, m in METHODS.items() if spec.modality in m.modalities)
        raise ConfigError(f"method {config.method} trains on {' and '.join(cls.modalities)} "
                          f"data, not {spec.modality} data like {config.data}; for "
                          f"{spec.modality} data use {', '.join(fits)}")
    name = config.backbone if config.backbone != "default" else cls.recipe.backbone
    # the recipe's backbone settings hold for its backbone's family (MAE's pooling for any ViT,
    # not a ResNet the user picks); the user's own win
    own = cls.recipe.backbone_args if _same_family(name, cls.recipe.backbone) else {}
    backbone_args = {**own, **config.backbone_args}
    try:
        if spec.modality == "table":
            pre = (init_preprocessing(config.init_from) if config.init_from
                   else TablePreprocessing.fit(source.train.images, source.table))
            backbone = build_table_backbone(name, pre, **backbone_args)
            views = build_views(backbone.preprocessing,
                                ViewConfig.from_dict({**cls.recipe.views.to_dict(),
                                                      **config.views}))
            return cls(backbone, views, spec, **config.method_args)
    except ValueError as e:
        raise ConfigError(f"method {config.method}: {e}") from None
    mean, std = init_stats(config.init_from) if config.init_from else channel_stats(source.train)
    try:
        backbone = build_backbone(name, channels=source.channels, input_size=source.image_size,
                                  mean=mean, std=std, **backbone_args)
        views = build_views(backbone.preprocessing,
                            ViewConfig.from_dict({**cls.recipe.views.to_dict(), **config.views}))
        return cls(backbone, views, spec, **config.method_args)
    except ValueError as e:
        raise ConfigError(f"method {config.method}: {e}") from None


def init_preprocessing(run_dir: str | Path) -> TablePreprocessing:
    """The table preprocessing of the run we start from: its vocabularies and scalers are what
    its weights were trained with."""
    path = RunDir(run_dir).config
    try:
        pre = yaml.safe_load(path.read_text())["resolved"]["preprocessing"]
        return TablePreprocessing.from_dict(pre)
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        raise ConfigError(f"cannot start from {run_dir}: {path} is missing or holds no "
                          "resolved table preprocessing") from None


def guided_batch_sampler(source: DataSource, config: PretrainConfig) -> GuidedBatchSampler:
    """G-SimCLR's batches over pseudo-labels from a denoising autoencoder and k-means with
    four times as many clusters as the global batch: the sampler needs at least as many, and
    the margin keeps k-means' larger clusters within the number of batches, so an epoch keeps
    all its steps (at 2x, digits lost one batch in 14 to a cluster of 18)."""
    clusters = min(len(source.train) // 2, 4 * config.batch_size)
    try:
        labels = pseudo_labels(source.train, clusters, seed=config.seed)
        return GuidedBatchSampler(labels, config.batch_size, config.seed)
    except ValueError as e:
        raise ConfigError(f"--batch-sampler guided: {e}") from None


def pretrain_run(config: PretrainConfig, resume: bool = False, progress: bool = True,
                 callbacks: Sequence[L.Callback] = ()) -> PretrainResult:
    """Train ``config`` into its run directory; with ``resume``, continue from last.ckpt.
    ``callbacks``: the user's own, run after the run's callbacks."""
    config.validate()
    check_devices(config)
    if rank_zero_only.rank == 0:
        warn_unless_ready(config.method)
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    config.run_dir = str(run_dir)
    run = RunDir(run_dir)
    last = run.last
    if resume and not last.is_file():
        raise ConfigError(f"nothing to resume: {last} does not exist")
    if resume and rank_zero_only.rank == 0:
        remove_stale_temps(last)  # a write the kill interrupted; last.ckpt itself is whole
    if resume:
        check_resumable(run)
    if not resume and last.is_file():
        raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or another "
                          "--run-dir")
    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.init_from and not resume:
        init_ckpt = init_checkpoint(config.init_from)
        init_state = load_checkpoint_safely(init_ckpt)["state_dict"]  # refuse before any work
    source = load_source(config.data, channels=config.channels, image_size=config.image_size,
                         target=config.target, categorical=tuple(config.categorical),
                         task=config.task)
    if source.table is not None and config.init_from:
        pre = init_preprocessing(config.init_from)
        source = align_table(source, pre.columns, pre.kinds, pre.categories)
    if config.classes is not None:
        source = select_classes(source, config.classes)
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
    betas = tuple(recipe.betas)
    wd = config.weight_decay if config.weight_decay is not None else recipe.weight_decay
    warmup = (config.warmup_fraction if config.warmup_fraction is not None
              else recipe.warmup_fraction)
    clip = (config.grad_clip if config.grad_clip is not None else recipe.grad_clip) or None

    in_memory = source.train.images is not None
    workers = config.num_workers if config.num_workers is not None else (
        0 if in_memory else min(4, os.cpu_count() or 1))
    # batches carry dataset indices for methods with per-sample state; its own generator:
    # worker seeds drawn from the global RNG would shift the augmentation stream of a resumed
    # run against the uninterrupted one
    loader_args = dict(num_workers=workers, collate_fn=collate_batch,
                       persistent_workers=workers > 0,
                       generator=torch.Generator().manual_seed(config.seed))
    steps_per_epoch = len(source.train) // config.batch_size
    if isinstance(source.train.dataset, ShardSamples):
        if (config.batch_sampler or recipe.batch_sampler) == "guided":
            raise ConfigError("--batch-sampler guided needs random access to the images; tar "
                              "shards are streamed: use an image folder")
        sampler, loader = shard_loader(source, config, per_device, workers)
        steps_per_epoch = sampler.steps_per_epoch(world)
    elif (config.batch_sampler or recipe.batch_sampler) == "guided":
        sampler = guided_batch_sampler(source, config)
        loader = DataLoader(WithIndices(source.train.dataset), batch_sampler=sampler,
                            **loader_args)
        steps_per_epoch = sampler.steps_per_epoch()
    else:
        sampler = ShardedShuffle(len(source.train), per_device, config.seed)
        loader = DataLoader(WithIndices(source.train.dataset), batch_size=per_device,
                            sampler=sampler, drop_last=True, **loader_args)
    if config.epochs is not None:
        total = config.epochs * steps_per_epoch
    elif config.steps is not None:
        total = config.steps
    else:
        # provisional: TimeBudget sizes it after measuring, ComputeMeter after counting
        total = 10 * steps_per_epoch
    schedule = Schedule(config.schedule, warmup, config.schedule_constant,
                        config.cooldown_fraction, config.anneal_fraction,
                        continuing=config.init_from is not None)
    module = PretrainModule(method, optimizer, lr, wd, warmup, total, config.batch_size,
                            provisional_total=config.epochs is None and config.steps is None,
                            schedule=schedule,
                            betas=betas, compile=config.compile)
    if config.compile:
        use_compile_cache()
    if config.init_from and not resume:
        load_weights(module, init_state, init_ckpt)

    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = config.to_dict() | {"resolved": {
        "optimizer": optimizer, "lr_scaled": lr, "weight_decay": wd, "warmup_fraction": warmup,
        "betas": list(betas), "grad_clip": clip, "precision": resolve_precision(config),
        "backbone": method.backbone.config["name"], "views": method.views.config.to_dict(),
        "method_args": {**method.hparams(), **config.method_args},
        # with the method's args, enough to rebuild the method alone (layers probe, report)
        "data": method.data.to_dict(), "product": method.product,
        "preprocessing": method.backbone.preprocessing.to_dict(),
    }}
    if not resume and rank_zero_only.rank == 0:
        run.config.write_text(yaml.safe_dump(resolved, sort_keys=False))

    hooks: list[L.Callback] = [
        # first: the rows MetricsLog writes carry the compute of their own step
        ComputeMeter(config.budget_flops, cost=method.views.relative_cost),
        MetricsLog(run.metrics, config.log_every),
        # the product's monitors (RankMe for an encoder) before PeriodicCheckpoint, so
        # last.ckpt carries their state
        *product_monitors(method.product, source, config, run),
        DataOrder(sampler),  # before PeriodicCheckpoint: a checkpoint counts its own batch
        # before PeriodicCheckpoint: a checkpoint carries the average of its own step
        *([EncoderEMA(method.export(), config.ema)] if config.ema else []),
        PeriodicCheckpoint(last, config.checkpoint_every_s),
    ]
    if config.schedule == "infinite" and config.anneal_fraction > 0:
        hooks.append(ConstantPhaseCheckpoint(run.constant, config.anneal_fraction))
    if config.budget_seconds is not None:
        # the views say what a step costs as training goes (progressive resizing: less early)
        hooks.insert(0, TimeBudget(config.budget_seconds, cost=method.views.relative_cost))
    hooks += callbacks
    if progress:
        hooks.append(PretrainProgressBar(leave=True))
    trainer = build_trainer(config, hooks, progress, grad_clip=clip)
    if not resume:
        log_config(trainer.loggers, resolved)  # a resumed run's trackers have it already
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # Lightning's advice is for GPU input pipelines; ours is batched on the device already
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
        # DataOrder resumes the data mid-epoch; a shard stream splits itself over workers
        warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
        warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
        trainer.fit(module, loader, ckpt_path=str(last) if resume else None)
    seconds = time.perf_counter() - t0
    selected: dict = {}
    if config.select_by == "rankme" and run.best.is_file():
        # the exported encoder is the highest-RankMe one; last.ckpt stays the latest, for resume
        module.load_state_dict(load_checkpoint_safely(run.best)["state_dict"])
        selected = {"selected_by": "rankme", **json.loads(run.best_meta.read_text())}
    training = training_record(trainer, module, config, steps_per_epoch)
    if trainer.is_global_zero:
        meta = {"method": config.method, "product": method.product,
                "steps": trainer.global_step, "training": training, **selected}
        exported = method.export()
        if config.ema:  # the average is the product; the online weights are kept beside it
            save_encoder(exported, run.online, meta | {"weights": "online"})
            ema = next(c for c in trainer.callbacks if isinstance(c, EncoderEMA))
            exported, meta = ema.averaged(), meta | {"weights": f"ema {config.ema:g}"}
        save_encoder(exported, run_dir, meta)
    return PretrainResult(run_dir, trainer.global_step, trainer.current_epoch, seconds,
                          module.images_per_s, trainer.is_global_zero, training)


def training_record(trainer: L.Trainer, module: PretrainModule, config: PretrainConfig,
                    steps_per_epoch: int) -> dict:
    """What the run trained, in units that travel between machines (steps, epochs, FLOPs)
    beside the ones that do not (wall time, images/s): eval.json, encoder.json, compare."""
    meter = next(c for c in trainer.callbacks if isinstance(c, ComputeMeter))
    return {"budget": config.budget, "steps": int(trainer.global_step),
            "epochs": round(trainer.global_step / max(1, steps_per_epoch), 3),
            "compute_flops": float(meter.spent),
            "flops_per_step": float(meter.per_step),
            "flop_counts": meter.counts,  # each count: its step, the views' relative cost, FLOPs
            "train_seconds": round(module.elapsed_before + module.session_elapsed(), 1),
            "images_per_s": round(module.images_per_s, 1),
            "global_batch": config.batch_size, "processes": config.devices * config.num_nodes}


def shard_loader(source: DataSource, config: PretrainConfig, per_device: int, workers: int
                 ) -> tuple[ShardBatches, DataLoader]:
    """Batches streamed from tar shards, made in the workers; not persistent workers, so each
    epoch's copy of the stream carries that epoch (and a resume's skip)."""
    stream = ShardBatches(source.train.dataset, per_device, workers, config.seed)
    world = config.devices * config.num_nodes
    if stream.steps_per_epoch(world) == 0:
        raise ConfigError(f"{len(source.train)} samples in {config.data} are too few to split "
                          f"over {world} process(es) x {max(workers, 1)} worker(s) with "
                          f"batches of {per_device}: use a smaller --batch-size or fewer "
                          "num_workers (--config)")
    loader = DataLoader(stream, batch_size=None, num_workers=workers, collate_fn=collate_batch,
                        generator=torch.Generator().manual_seed(config.seed))
    return stream, loader


def build_trainer(config: PretrainConfig, callbacks: list[L.Callback], progress: bool,
                  grad_clip: float | None = None) -> L.Trainer:
    """DDP when devices x nodes > 1 (gloo on CPU, NCCL on GPUs); Lightning reads torchrun's and
    SLURM's environment variables itself. ``config.loggers`` become Lightning loggers writing
    into ``RUN/logs/`` (train/trackers.py); ``config.run_dir`` must be set. ``grad_clip``: the
    global gradient norm Lightning clips to before each optimizer step (None: no clipping)."""
    world = config.devices * config.num_nodes
    # Lightning's start-up banner (device list, tips) is noise next to our own summary
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return L.Trainer(
        accelerator="auto", devices=config.devices, num_nodes=config.num_nodes,
        strategy="ddp" if world > 1 else "auto", precision=resolve_precision(config),
        max_epochs=config.epochs if config.epochs is not None else -1,
        max_steps=config.steps if config.steps is not None else -1,
        logger=open_loggers(config.run_dir, config.loggers) if config.loggers else False,
        enable_checkpointing=False, enable_model_summary=False,
        enable_progress_bar=progress, num_sanity_val_steps=0, callbacks=callbacks,
        plugins=[AtomicCheckpointIO()], log_every_n_steps=config.log_every,
        gradient_clip_val=grad_clip, gradient_clip_algorithm="norm",
        # per-process batch statistics unless asked: SyncBatchNorm costs a collective per layer
        sync_batchnorm=config.sync_batchnorm, use_distributed_sampler=False,  # ShardedShuffle
    )


STATUS_WARNINGS = {
    "collapses": "its representation collapsed at the learning guard's budget",
    "experimental": "it did not beat its own untrained encoder at the learning guard's budget",
}


def warn_unless_ready(method: str) -> None:
    """One line before training a method the learning guard (selfsup/guard.py) does not call
    ready: its encoder may score below the untrained one it starts from."""
    status = get_method(method).info.status
    if status in STATUS_WARNINGS:
        logging.getLogger("selfsup").warning(
            "selfsup: %s is listed '%s': %s (selfsup methods); expect an encoder no better "
            "than an untrained one", method, status, STATUS_WARNINGS[status])


def check_devices(config: PretrainConfig) -> None:
    """Refuse more processes than this machine has devices for, and a DDP run without a
    shared run directory."""
    if torch.cuda.is_available():
        have, what = torch.cuda.device_count(), "GPU(s)"
    else:
        have, what = os.cpu_count() or 1, "CPU cores"
    if config.devices > have:
        raise ConfigError(f"--devices {config.devices} asks for more processes than the "
                          f"{have} {what} of this machine; use --devices {have} or fewer")
    if config.sync_batchnorm and not torch.cuda.is_available():
        raise ConfigError("--sync-batchnorm needs GPUs (torch's SyncBatchNorm runs on CUDA only); "
                          "on CPU each process normalizes with its own batch")
    if config.devices * config.num_nodes > 1 and not config.run_dir:
        raise ConfigError("--devices/--num-nodes above 1 need --run-dir: every process must "
                          "write to the same run directory")


def load_weights(module: PretrainModule, state: dict, path: Path) -> None:
    """Backbone and heads from another run's checkpoint; the optimizer starts fresh."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        detail = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise ConfigError(f"cannot start from {path}: its weights do not fit this method and "
                          f"backbone ({detail})") from None


class ConstantPhaseCheckpoint(L.Callback):
    """Saves the weights where the infinite schedule's anneal begins: ``--init-from`` continues
    the constant phase from them, while the run itself goes on to anneal for its encoder."""

    def __init__(self, path: Path, anneal_fraction: float):
        self.path = Path(path)
        self.anneal_fraction = anneal_fraction

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        start = pl_module.total_steps - round(self.anneal_fraction * pl_module.total_steps)
        if trainer.global_step == start:
            trainer.save_checkpoint(self.path, weights_only=False)
