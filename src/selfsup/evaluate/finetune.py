"""End-to-end fine-tuning with a fraction of the labels: the protocol masked image modelling is
judged by.

He et al. 2021 ("Masked Autoencoders Are Scalable Vision Learners", sec. 4 and appendix A.1)
judge MAE by fine-tuning the whole encoder plus a linear head, not by a frozen linear probe: its
features are strong but not linearly separable. The label fractions follow SimCLR's
semi-supervised evaluation (Chen et al. 2020, "A Simple Framework for Contrastive Learning of
Visual Representations", sec. 6 / table 7: fine-tune on 1% and 10% of ImageNet's labels, drawn
class-balanced).

Every fraction gets the same step budget, so a small fraction sees its samples many times; each
run is paired with the same architecture trained from a random initialization on the same
subset with the same budget, and the gap between the two is what pretraining bought.

The recipe is MAE's fine-tuning recipe without its heavy regularizers (mixup, cutmix,
RandAugment, drop path), which need far longer schedules than a CPU can afford: AdamW
(weight decay 0.05, none on biases, norms and other 1-d parameters), linear warmup over 10% of
the steps then cosine to 0, cross-entropy with label smoothing 0.1, optional layer-wise lr decay
(BEiT, Bao et al. 2021; MAE's ``param_groups_lrd``), and a light random resized crop (scale
(0.5, 1)) + horizontal flip.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split
from ..views.geometric import random_resized_crop_flip
from .features import iter_uint8_batches

FRACTIONS = (0.01, 0.1, 1.0)
SEEDS = (0, 1, 2)
# 300 steps of batch 128 is ~27 passes over 1.4k digits or ~0.6 over 60k Fashion-MNIST images:
# enough for a small ResNet to leave the warmup well behind. On the benchmark CPU (2 cores with
# AMX, benchmarks/RESULTS.md "Backbone throughput": resnet10w32, 28 px, bf16, ~720 images/s for
# a SimCLR step, i.e. ~1.4k single-image forward+backward/s) a step costs ~0.1 s, a run under a
# minute and the default grid (3 fractions x 3 seeds x 2 arms = 18 runs) ~15 minutes. A CPU
# without bf16 instructions runs bf16 autocast several times slower than fp32: pass bf16 only
# where the hardware has it.
STEPS = 300
BATCH_SIZE = 128
# AdamW lr per 256 samples, scaled linearly with the batch (Goyal et al. 2017): 1e-3 at batch 128.
# A from-scratch small ResNet and a pretrained one both train stably there in a few hundred
# steps. MAE's ViT recipe is blr 5e-4 per 256 with layer_decay 0.65 (ViT-B) / 0.75 (ViT-L) over
# 100 epochs; pass ``lr`` and ``layer_decay`` to follow it on a ViT.
BASE_LR_PER_256 = 2e-3
WEIGHT_DECAY = 0.05  # MAE / BEiT fine-tuning
WARMUP_FRACTION = 0.1
LABEL_SMOOTHING = 0.1  # MAE fine-tuning (Szegedy et al. 2016)
CROP_SCALE = (0.5, 1.0)  # lighter than pretraining's (0.08, 1): labels must survive the crop
HEAD_INIT_STD = 2e-5  # MAE's head init: a near-zero head barely disturbs the pretrained features
EVAL_BATCH = 512


def balanced_subset(labels: np.ndarray | None, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced subset: round(fraction * n_c) samples of each class c
    (rounding half up), drawn without replacement with ``seed``, as SimCLR's 1% / 10% ImageNet
    subsets keep every class's share. Unlabeled samples (-1) are never drawn.

    Unlike the few-shot curve's subset (same count for every class), this keeps the class
    proportions of the training set, so fraction 1 is every labelled sample.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1] (0% < f <= 100%), got {fraction}")
    labels = None if labels is None else np.asarray(labels)
    if labels is None or not (labels >= 0).any():
        raise ValueError("fine-tuning needs labels, and this training split has none")
    classes, counts = np.unique(labels[labels >= 0], return_counts=True)
    # half up, with a hair of slack so fraction 0.5 / n gives one sample despite float error
    per_class = np.floor(fraction * counts + 0.5 + 1e-9).astype(np.int64)
    if per_class.min() == 0:
        i = int(np.argmin(counts))
        smallest = 0.5 / counts[i]
        raise ValueError(f"label fraction {fraction:g} leaves class {classes[i]} with 0 samples "
                         f"(it has {counts[i]}); the smallest fraction that keeps one of each "
                         f"class is {smallest:.4g} ({smallest:.2%})")
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:k]
             for c, k in zip(classes, per_class, strict=True)]
    return np.sort(np.concatenate(picks))


def parse_fractions(spec: str) -> tuple[float, ...]:
    """``"1%,10%,100%"`` -> (0.01, 0.1, 1.0); bare numbers are fractions (``"0.1"`` is 10%)."""
    out = []
    for item in (p.strip() for p in spec.split(",")):
        percent = item.endswith("%")
        try:
            value = float(item[:-1] if percent else item)
        except ValueError:
            raise ValueError(f"label fraction {item!r} is not a number; write percentages or "
                             "fractions, e.g. 1%,10%,100% or 0.01,0.1,1") from None
        value = value / 100 if percent else value
        if not 0 < value <= 1 or not math.isfinite(value):
            hint = f" (did you mean {item}%?)" if not percent and 1 < value <= 100 else ""
            raise ValueError(f"label fraction {item!r} must be above 0% and at most 100%{hint}")
        out.append(value)
    return tuple(out)


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """Learning-rate factor at ``step`` (0-based): linear warmup to 1 over ``warmup`` steps, then
    half a cosine to 0 at ``steps`` (Loshchilov & Hutter 2017, without restarts)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def finetune_param_groups(encoder: nn.Module, head: nn.Module, lr: float, weight_decay: float,
                          layer_decay: float | None = None) -> list[dict[str, Any]]:
    """AdamW parameter groups: no weight decay on 1-d parameters (biases, norm scales) nor on what
    ``encoder.no_weight_decay()`` names (a ViT's position embedding and CLS token); with
    ``layer_decay``, layer i of L = ``encoder.num_lr_layers`` gets lr * layer_decay ** (L - i)
    (BEiT, Bao et al. 2021, sec. 2.6; MAE's ``param_groups_lrd``). The head always gets ``lr``.

    Each group carries ``base_lr``, the lr the schedule scales.
    """
    if layer_decay is not None and not (hasattr(encoder, "lr_layer_id")
                                        and hasattr(encoder, "num_lr_layers")):
        raise ValueError("layer_decay needs a backbone with layers (a ViT); "
                         f"{type(encoder).__name__} has no lr_layer_id / num_lr_layers")
    skip_decay = set(encoder.no_weight_decay()) if hasattr(encoder, "no_weight_decay") else set()
    groups: dict[tuple[str, bool], dict[str, Any]] = {}

    def add(name: str, p: nn.Parameter, scale: float, layer: str) -> None:
        decay = p.ndim > 1 and name not in skip_decay
        key = (layer, decay)
        if key not in groups:
            groups[key] = {"params": [], "names": [], "base_lr": lr * scale, "lr": lr * scale,
                           "lr_scale": scale, "weight_decay": weight_decay if decay else 0.0}
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)

    for name, p in encoder.named_parameters():
        if not p.requires_grad:
            continue
        if layer_decay is None:
            add(name, p, 1.0, "encoder")
        else:
            layer_id = int(encoder.lr_layer_id(name))
            add(name, p, layer_decay ** (encoder.num_lr_layers - layer_id), f"layer{layer_id}")
    for name, p in head.named_parameters():
        add(f"head.{name}", p, 1.0, "head")
    return list(groups.values())


def _match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 3 and channels == 1:
        return x.mean(dim=1, keepdim=True)
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    raise ValueError(f"cannot map {x.shape[1]} image channels to the encoder's {channels}")


def _uint8_batch(split: Split, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (B, C, H, W) and int64 labels (B,) for ``idx``; a folder split's undecodable files
    (``dataset[i]`` is None) are left out, so B may be smaller than len(idx), even 0."""
    if split.images is not None:
        return (split.images[torch.from_numpy(idx)],
                torch.from_numpy(np.asarray(split.labels)[idx]).long())
    items = [item for item in (split.dataset[int(i)] for i in idx) if item is not None]
    if not items:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    return (torch.stack([image for image, _ in items]),
            torch.tensor([label for _, label in items], dtype=torch.long))


def _batch_order(indices: np.ndarray, steps: int, batch: int, seed: int) -> list[np.ndarray]:
    """``steps`` batches of ``batch`` distinct indices: epochs without replacement over
    ``indices``, each shuffled by a generator seeded with ``seed``, the partial batch at an
    epoch's end dropped (a different remainder each epoch), repeated until ``steps``."""
    gen = torch.Generator().manual_seed(seed)
    per_epoch = len(indices) // batch
    order: list[np.ndarray] = []
    while len(order) < steps:
        perm = indices[torch.randperm(len(indices), generator=gen).numpy()]
        order.extend(perm[i * batch : (i + 1) * batch] for i in range(per_epoch))
    return order[:steps]


@torch.no_grad()
def _top1(encoder: nn.Module, head: nn.Module, test: Split, bf16: bool) -> float:
    encoder.eval()
    head.eval()
    device = next(encoder.parameters()).device
    correct = total = 0
    for images, labels in iter_uint8_batches(test, EVAL_BATCH):
        if len(labels) == 0:
            continue
        x = encoder.preprocessing(images.to(device))  # (B, C, S, S) normalized
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = head(encoder(x))  # (B, classes)
        labelled = labels >= 0  # unlabelled test images (-1) are not scored
        correct += int((logits.float().argmax(1).cpu() == labels)[labelled].sum())
        total += int(labelled.sum())
    if total == 0:
        raise ValueError("the test split has no readable labelled images to score")
    return correct / total


def _num_classes(train: Split, test: Split) -> int:
    if test.labels is None or not (np.asarray(test.labels) >= 0).any():
        raise ValueError("fine-tuning is scored on a labelled test split, and this one has none")
    return int(max(np.max(train.labels), np.max(test.labels))) + 1


def finetune_once(encoder: nn.Module, train: Split, test: Split, indices: np.ndarray, *,
                  steps: int, batch_size: int = BATCH_SIZE, lr: float,
                  weight_decay: float = WEIGHT_DECAY, layer_decay: float | None = None,
                  seed: int, bf16: bool) -> float:
    """Fine-tune a copy of ``encoder`` plus a linear head on ``train`` restricted to ``indices``
    for ``steps`` AdamW steps; return top-1 accuracy on the whole ``test`` split.

    The caller's encoder is never modified. Batches hold min(batch_size, len(indices)) distinct
    samples (see ``_batch_order``). Training images are uint8 -> float / 255 -> random resized
    crop (scale (0.5, 1)) + flip at the encoder's input size -> the encoder's normalization; test
    images go through the encoder's own preprocessing. The seed fixes the batch order, the head's
    init and the augmentation, so one seed gives one accuracy (on one device and thread count).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise ValueError("no training samples to fine-tune on (empty indices)")
    num_classes = _num_classes(train, test)
    model = copy.deepcopy(encoder).requires_grad_(True)
    device = next(model.parameters()).device
    pre = model.preprocessing
    batch = min(batch_size, len(indices))
    order = _batch_order(indices, steps, batch, seed)
    warmup = max(1, round(WARMUP_FRACTION * steps))
    # the augmentation draws from the global generator: fork it so a seed fixes the run without
    # moving the caller's random state
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        head = nn.Linear(model.dim, num_classes).to(device)
        nn.init.trunc_normal_(head.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(head.bias)
        groups = finetune_param_groups(model, head, lr, weight_decay, layer_decay)
        optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
        model.train()
        head.train()
        for step, idx in enumerate(order):
            factor = warmup_cosine(step, steps, warmup)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            images, labels = _uint8_batch(train, idx)
            if len(labels) == 0:  # every file in this batch failed to decode; the step counts
                continue
            x = _match_channels(images.to(device).float() / 255.0, pre.channels)
            x = pre.normalize(random_resized_crop_flip(x, pre.input_size, CROP_SCALE))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = head(model(x))  # (B, classes)
            loss = F.cross_entropy(logits.float(), labels.to(device),
                                   label_smoothing=LABEL_SMOOTHING)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return _top1(model, head, test, bf16)


def _rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose generators `torch.random.fork_rng` must fork for ``device``."""
    return [device.index or 0] if device.type == "cuda" else []


def _summary(runs: Sequence[float]) -> dict[str, Any]:
    # population std (ddof=0), as the few-shot curves report it
    return {"mean": float(np.mean(runs)), "std": float(np.std(runs)),
            "runs": [float(r) for r in runs]}


def finetune_protocol(encoder: nn.Module, scratch: Callable[[], nn.Module] | None, train: Split,
                      test: Split, fractions: Sequence[float] = FRACTIONS,
                      seeds: Sequence[int] = SEEDS, steps: int = STEPS,
                      batch_size: int = BATCH_SIZE, lr: float | None = None,
                      layer_decay: float | None = None, bf16: bool = False,
                      progress: Callable[[str], None] | None = None,
                      pretrained: bool = True) -> dict[str, Any]:
    """Fine-tuning accuracy against the fraction of labels, pretrained vs. from scratch.

    For each fraction and seed, one class-balanced subset (``balanced_subset``) fine-tunes both
    ``encoder`` and ``scratch()`` (a fresh, randomly initialized encoder of the same architecture,
    built anew for every run) with the same steps, batch, lr and augmentation. ``layer_decay``
    applies to the pretrained arm only: it protects pretrained lower layers, and a random init
    has none to protect. ``lr`` defaults to BASE_LR_PER_256 * batch_size / 256. Fraction 1 is the
    same subset for every seed; its runs still differ in batch order, head init and augmentation.
    ``scratch=None`` skips the baseline arm (its rows hold None), for a study that measured the
    same architecture's baseline once already; ``pretrained=False`` skips the other arm (its
    rows hold None), for a study that fine-tunes its runs under fewer seeds than the baseline's.

    Returns ``{"budget", "fractions", "seeds", "rows", "seconds"}``; each row is ``{"fraction",
    "n_labels", "pretrained": {"mean", "std", "runs"}, "scratch": {...}, "gain"}`` with std the
    population std (ddof=0) over seeds and gain = pretrained mean - scratch mean.
    """
    if not pretrained and scratch is None:
        raise ValueError("nothing to fine-tune: both the pretrained and the scratch arm are off")
    lr = BASE_LR_PER_256 * batch_size / 256 if lr is None else lr
    if layer_decay is not None:  # fail before any run, not after the first arm
        finetune_param_groups(encoder, nn.Identity(), lr, WEIGHT_DECAY, layer_decay)
    device = next(encoder.parameters()).device
    t0 = time.perf_counter()
    rows = []
    for fraction in fractions:
        arms: dict[str, list[float]] = {"pretrained": [], "scratch": []}
        n_labels = 0
        for seed in seeds:
            idx = balanced_subset(train.labels, fraction, seed)
            n_labels = len(idx)
            t_run = time.perf_counter()
            common = dict(steps=steps, batch_size=batch_size, lr=lr, seed=seed, bf16=bf16)
            if pretrained:
                arms["pretrained"].append(finetune_once(encoder, train, test, idx,
                                                        layer_decay=layer_decay, **common))
            if scratch is not None:
                # the seed fixes the fresh init too, whatever ran before this run
                with torch.random.fork_rng(devices=_rng_devices(device)):
                    torch.manual_seed(seed)
                    fresh = scratch().to(device)
                if getattr(fresh, "dim", None) != encoder.dim:
                    raise ValueError(f"scratch() built an encoder of dim "
                                     f"{getattr(fresh, 'dim', None)}, the pretrained one has "
                                     f"{encoder.dim}: same architecture needed")
                arms["scratch"].append(finetune_once(fresh, train, test, idx, **common))
            if progress is not None:
                done = [f"{arm} {runs[-1]:.3f}" for arm, runs in arms.items() if runs]
                progress(f"finetune {fraction:.0%} ({n_labels} labels) seed {seed}: "
                         f"{', '.join(done)} ({time.perf_counter() - t_run:.0f} s)")
        tuned = _summary(arms["pretrained"]) if arms["pretrained"] else None
        from_scratch = _summary(arms["scratch"]) if arms["scratch"] else None
        rows.append({"fraction": float(fraction), "n_labels": int(n_labels),
                     "pretrained": tuned, "scratch": from_scratch,
                     "gain": tuned["mean"] - from_scratch["mean"] if tuned and from_scratch
                     else None})
    budget = {"steps": steps, "batch_size": batch_size, "lr": lr, "weight_decay": WEIGHT_DECAY,
              "layer_decay": layer_decay, "scratch_layer_decay": None,
              "optimizer": "AdamW", "schedule": f"linear warmup {WARMUP_FRACTION:.0%} + cosine",
              "label_smoothing": LABEL_SMOOTHING,
              "augmentation": f"random resized crop scale {CROP_SCALE} + horizontal flip",
              "bf16": bf16, "std": "population (ddof=0) over seeds"}
    return {"budget": budget, "fractions": [float(f) for f in fractions],
            "seeds": [int(s) for s in seeds], "rows": rows,
            "seconds": time.perf_counter() - t0}
