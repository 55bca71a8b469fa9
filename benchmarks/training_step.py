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


# Square matmul sizes swept for a peak: the best one differs by machine, precision and library
# (on a 2-core Zen 4, bf16 is best at 1024-2048 and 10% slower at 8192; CUDA needs larger ones).
CPU_SIZES = (1024, 2048, 4096, 8192)
CUDA_SIZES = (4096, 8192, 16384)


@dataclass
class Peak:
    """The best sustained matmul rate of one precision and the matmul that reached it."""

    flops: float  # FLOP/s
    precision: str  # "bf16" or "fp32"
    n: int  # side of the square matmul
    backend: str  # the library that ran it

    def __str__(self) -> str:
        return f"{self.precision} {self.flops / 1e12:.2f} TFLOP/s ({self.backend}, {self.n}^2)"


def matmul_rate(run: Callable[[], object], flops: int, device: torch.device,
                seconds: float = 1.0) -> float:
    """Sustained FLOP/s of ``run`` (``flops`` each call) over at least ``seconds``, after two
    warm-up calls (oneDNN JITs its kernel and reorders weights on the first)."""
    for _ in range(2):
        run()
    sync(device)
    calls, t = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - t < seconds:
        run()
        sync(device)
        calls += 1
    return flops * calls / (time.perf_counter() - t)


def matmul_backends(device: torch.device, dtype: torch.dtype, n: int) -> dict[str, Callable]:
    """The ways a training step of this precision multiplies matrices, as ``n``^2 matmuls.

    On a CPU, fp32 torch.mm calls MKL, which takes its generic code path on a non-Intel CPU
    (MKL_VERBOSE: "Intel(R) Architecture processors", not AVX-512), while the step's
    convolutions are oneDNN's AVX-512 JIT kernels, so oneDNN's fp32 matmul is measured beside
    it; bf16 torch.mm is already oneDNN's. On CUDA, fp32 convolutions run on TF32 tensor cores
    by default (cudnn.conv.fp32_precision "tf32"), so the fp32 peak is a TF32 matmul where
    they do.
    """
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    if device.type == "cuda":
        tf32 = dtype == torch.float32 and torch.backends.cudnn.conv.fp32_precision == "tf32"
        return {"cuBLAS TF32" if tf32 else "cuBLAS": lambda: _cuda_mm(a, b, tf32)}
    runs = {"oneDNN" if dtype == torch.bfloat16 else "MKL": lambda: a @ b}
    if dtype == torch.float32 and torch.backends.mkldnn.is_available():
        # mkldnn_linear(x, w) = x @ w.T on oneDNN tensors: the only fp32 oneDNN matmul
        # reachable from Python (torch.utils.mkldnn uses it)
        am, bm = a.to_mkldnn(), b.t().contiguous().to_mkldnn()
        runs["oneDNN"] = lambda: torch._C._nn.mkldnn_linear(am, bm)
    return runs


def _cuda_mm(a: torch.Tensor, b: torch.Tensor, tf32: bool) -> torch.Tensor:
    matmul = torch.backends.cuda.matmul
    before, matmul.fp32_precision = matmul.fp32_precision, "tf32" if tf32 else "ieee"
    try:
        return a @ b
    finally:
        matmul.fp32_precision = before


def matmul_peak(device: torch.device, dtype: torch.dtype,
                sizes: tuple[int, ...] | None = None, verbose: bool = True) -> Peak:
    """The practical peak of ``dtype`` on ``device``: the best sustained rate over square
    matmuls of ``sizes`` and every library a step of that precision uses (the datasheet figure
    is not reachable on a shared 2-core VM, and no one matmul size is best everywhere)."""
    sizes = sizes or (CUDA_SIZES if device.type == "cuda" else CPU_SIZES)
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    best = Peak(0.0, precision, 0, "")
    for n in sizes:
        for backend, run in matmul_backends(device, dtype, n).items():
            rate = matmul_rate(run, 2 * n**3, device)
            if verbose:
                print(f"  {precision} {backend} {n}^2: {rate / 1e12:.3f} TFLOP/s", flush=True)
            if rate > best.flops:
                best = Peak(rate, precision, n, backend)
    return best


def peaks(device: torch.device) -> dict[str, Peak]:
    """The peak of each precision a step can run in on ``device``, keyed "bf16" and "fp32"."""
    from selfsup.hardware import has_bf16

    dtypes = {"fp32": torch.float32}
    # a CPU without bf16 instructions emulates it (minutes for one 2048^2 matmul): no bf16 step
    # would run there by default, and no peak is measured
    if device.type == "cuda" or has_bf16():
        dtypes = {"bf16": torch.bfloat16, **dtypes}
    found = {name: matmul_peak(device, dtype) for name, dtype in dtypes.items()}
    print("peaks: " + "; ".join(map(str, found.values())), flush=True)
    return found


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
