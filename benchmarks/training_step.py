"""What the speed benchmarks share: one selfsup training step built the way `selfsup pretrain`
builds it, lightly's documented recipe for the same method, FLOP counting and matmul peaks.

A pair of views counts as one image everywhere, as in the rest of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from selfsup.backbones import build_backbone
from selfsup.data import load_source
from selfsup.data.batch import Batch
from selfsup.data.spec import DataSpec
from selfsup.methods import get_method
from selfsup.train.optim import build_optimizer
from selfsup.views import ViewConfig, build_views

# DataLoader's default prefetch_factor: batches each worker holds ready ahead of the consumer
PREFETCH = 2

# Fashion-MNIST's training-set statistics, as `selfsup pretrain` measures them
FMNIST_MEAN, FMNIST_STD = (0.286,), (0.353,)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Step:
    """One training step as a closure over its model and optimizer."""

    run: Callable[[torch.Tensor], torch.Tensor]  # uint8 or float batch -> loss
    model: nn.Module


def selfsup_step(method: str, backbone: str, device: torch.device, *, bf16: bool = True,
                 channels_last: bool = True, views: dict | None = None,
                 foreach: bool | None = None, fused: bool | None = None,
                 compile: bool = False, input_size: int = 28) -> Step:
    """selfsup's step: batched kornia views on the device, backbone, head, loss, optimizer.

    ``views`` overrides fields of the method's recipe views (e.g. ``{"crop_ratio": 1.0}``).
    """
    cls = get_method(method)
    net = build_backbone(backbone, channels=1, input_size=input_size, mean=FMNIST_MEAN,
                         std=FMNIST_STD)
    if not channels_last:  # plain NCHW: the ResNet otherwise converts weights and inputs
        net.channels_last = False
        net = net.to(memory_format=torch.contiguous_format)
    view_cfg = ViewConfig(**{**cls.recipe.views.to_dict(), **(views or {})})
    data = DataSpec("image", (1, input_size, input_size), 60_000, 10)
    model = cls(net, build_views(net.preprocessing, view_cfg), data).to(device)
    opt = build_optimizer(cls.recipe.optimizer, model, cls.recipe.lr, cls.recipe.weight_decay)
    for group in opt.param_groups:
        if foreach is not None:
            group["foreach"] = foreach
        if fused is not None:
            group["fused"] = fused
    loss_fn = torch.compile(model.training_loss) if compile else model.training_loss

    def run(images: torch.Tensor) -> torch.Tensor:
        # a uint8 batch, or a pair of float view batches a DataLoader already made
        x = (images.to(device, non_blocking=True) if torch.is_tensor(images)
             else [v.to(device, non_blocking=True) for v in images])
        n = len(x) if torch.is_tensor(x) else len(x[0])
        batch = Batch(x, None, torch.arange(n, device=device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return Step(run, model)


def fashion_mnist_loader(batch: int, workers: int = 0, transform=None, seed: int = 0):
    """Training batches of Fashion-MNIST: uint8 tensors for selfsup, or per-sample PIL
    transforms in DataLoader workers (``transform``) the way lightly's examples load data."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    source = load_source("fashion-mnist")
    split = source.train
    gen = torch.Generator().manual_seed(seed)
    if transform is None:
        return DataLoader(split.dataset, batch_size=batch, shuffle=True, drop_last=True,
                          collate_fn=split.collate_fn, generator=gen)

    class PILImages(Dataset):
        def __len__(self) -> int:
            return len(split)

        def __getitem__(self, i: int):
            img = Image.fromarray(split.images[i, 0].numpy(), mode="L")
            return transform(img), int(split.labels[i])

    return DataLoader(PILImages(), batch_size=batch, shuffle=True, drop_last=True,
                      num_workers=workers, persistent_workers=workers > 0, generator=gen)


def lightly_step(method: str, backbone: str, device: torch.device) -> tuple[Step, Callable]:
    """lightly 1.6's documented recipe (examples/pytorch/{simclr,barlowtwins}.py): its projection
    head, loss and transforms, SGD lr 0.06, fp32, on the same backbone as selfsup.

    Returns the step (taking a pair of float view batches) and the per-sample PIL transform.
    """
    from lightly.loss import BarlowTwinsLoss, NTXentLoss
    from lightly.models.modules import BarlowTwinsProjectionHead, SimCLRProjectionHead
    from lightly.transforms import (
        BYOLTransform,
        BYOLView1Transform,
        BYOLView2Transform,
        SimCLRTransform,
    )

    norm = {"mean": list(FMNIST_MEAN), "std": list(FMNIST_STD)}  # one channel, not ImageNet's
    net = build_backbone(backbone, channels=1, input_size=28, mean=FMNIST_MEAN, std=FMNIST_STD)
    if method == "simclr":
        head, criterion = SimCLRProjectionHead(net.dim, 512, 128), NTXentLoss()
        transform = SimCLRTransform(input_size=28, normalize=norm)
    elif method == "barlow_twins":
        head, criterion = BarlowTwinsProjectionHead(net.dim, 2048, 2048), BarlowTwinsLoss()
        transform = BYOLTransform(BYOLView1Transform(input_size=28, normalize=norm),
                                  BYOLView2Transform(input_size=28, normalize=norm))
    else:
        raise ValueError(f"no lightly recipe here for {method!r}")
    model = nn.ModuleDict({"backbone": net, "head": head}).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.06)

    def run(views: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x0, x1 = (v.to(device) for v in views)
        loss = criterion(head(net(x0)), head(net(x1)))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return Step(run, model), transform


def step_flops(step: Step, batch) -> int:
    """FLOPs of one full training step (forward and backward), counted by PyTorch itself."""
    counter = FlopCounterMode(display=False)
    with counter:
        step.run(batch)
    return counter.get_total_flops()


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int | None = None,
                repeats: int = 10) -> float:
    """Achieved FLOP/s of a square matmul: the practical peak a training step is measured
    against (the datasheet figure is not reachable on a shared 2-core VM)."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def timed_steps(step: Step, batches, n: int, device: torch.device) -> float:
    """Seconds for ``n`` steps, data loading included (it is part of what a user waits for)."""
    sync(device)
    t = time.perf_counter()
    for _ in range(n):
        step.run(next(batches))
    sync(device)
    return time.perf_counter() - t


def endless(loader):
    while True:
        for images, *_ in loader:
            yield images
