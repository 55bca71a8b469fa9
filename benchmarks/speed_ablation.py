"""Which speed levers pay, each switched alone and all together, on the default training step
(SimCLR, the CPU default backbone, batch 256, 28 px Fashion-MNIST, 20 px training crops).

Levers: bf16 autocast (fp32 master weights), channels_last, batched kornia views in the main
process (vs per-sample torchvision/PIL views in a DataLoader worker), the AdamW kernel
(single-tensor loop, foreach, fused), torch.compile (steady state, and its compile time), and
intra-op threads. Contenders alternate in chunks so the machine's drift hits all alike.

    python benchmarks/speed_ablation.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402
from training_step import (  # noqa: E402
    FMNIST_MEAN,
    FMNIST_STD,
    PREFETCH,
    endless,
    fashion_mnist_loader,
    selfsup_step,
    timed_steps,
)

from selfsup.backbones import CPU_DEFAULT  # noqa: E402


class PrecomputedViews(nn.Module):
    """Stands in for TwoCropViews when a DataLoader already made the two views per sample."""

    def forward(self, pair):
        return pair[0], pair[1]


def per_sample_views(side: int):
    """torchvision's per-sample equivalent of the recipe's views (crop scale 0.5-1, flip,
    jitter 0.4/0.4 with p 0.8), the way lightly-style pipelines make them."""
    import torchvision.transforms as T

    one = T.Compose([T.RandomResizedCrop(side, scale=(0.5, 1.0)), T.RandomHorizontalFlip(),
                     T.RandomApply([T.ColorJitter(0.4, 0.4)], p=0.8), T.ToTensor(),
                     T.Normalize(FMNIST_MEAN, FMNIST_STD)])
    return lambda img: (one(img), one(img))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default=CPU_DEFAULT)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--chunk", type=int, default=5)
    p.add_argument("--no-compile", action="store_true")
    a = p.parse_args()
    threads = torch.get_num_threads()
    b, dev = a.batch_size, torch.device("cpu")

    def uint8_batches():
        return endless(fashion_mnist_loader(b))

    def pil_batches():
        return endless(fashion_mnist_loader(b, workers=1, transform=per_sample_views(20)))

    # name -> (selfsup_step kwargs, batches factory, threads)
    configs = {
        "defaults (all levers on)": ({}, uint8_batches, threads),
        "fp32 instead of bf16": ({"bf16": False}, uint8_batches, threads),
        "NCHW instead of channels_last": ({"channels_last": False}, uint8_batches, threads),
        "per-sample PIL views, 1 worker": ({}, pil_batches, threads),
        "1 intra-op thread": ({}, uint8_batches, 1),
        "AdamW foreach": ({"foreach": True}, uint8_batches, threads),
        "AdamW fused": ({"fused": True}, uint8_batches, threads),
        "all levers off (fp32, NCHW, PIL views)":
            ({"bf16": False, "channels_last": False}, pil_batches, threads),
    }
    if not a.no_compile:
        configs["torch.compile"] = ({"compile": True}, uint8_batches, threads)
    contenders = {}
    first_step = {}
    for name, (kwargs, batches, n_threads) in configs.items():
        torch.manual_seed(0)
        step = selfsup_step("simclr", a.backbone, dev, **kwargs)
        if batches is pil_batches:
            step.model.views = PrecomputedViews()
        it = batches()
        torch.set_num_threads(n_threads)
        t = time.perf_counter()
        step.run(next(it))
        first_step[name] = time.perf_counter() - t
        timed_steps(step, it, a.warmup - 1, dev)
        contenders[name] = (step, it, n_threads, 1 if batches is pil_batches else 0)
        print(f"ready: {name} (first step {first_step[name]:.1f} s)", flush=True)
    seconds = dict.fromkeys(contenders, 0.0)
    done = 0
    while done < a.steps:
        n = min(a.chunk, a.steps - done)
        for name, (step, it, n_threads, workers) in contenders.items():
            torch.set_num_threads(n_threads)
            # batches the worker prefetched during the others' turns would be free here
            timed_steps(step, it, PREFETCH * workers, dev)
            seconds[name] += timed_steps(step, it, n, dev)
        done += n
    torch.set_num_threads(threads)
    base = b * a.steps / seconds["defaults (all levers on)"]
    rows, rec = [], []
    for name, s in seconds.items():
        rate = b * a.steps / s
        step_s = s / a.steps
        extra = ""
        if name == "torch.compile":
            compile_s = first_step[name] - step_s
            saved = b / base - step_s  # seconds saved per step
            # wall time at the compiled speed after which the compile time is won back
            extra = (f"compile {compile_s:.0f} s; pays off after "
                     f"{compile_s / saved * step_s / 60:.1f} min" if saved > 0 else
                     f"compile {compile_s:.0f} s; never pays off")
        rows.append([name, f"{rate:.0f}", f"{rate / base:.2f}", extra])
        rec.append({"config": name, "images_per_s": rate, "first_step_s": first_step[name]})
        print(rows[-1], flush=True)
    save_json("speed_ablation", rec)
    append_table(f"Speed levers on the default step (simclr, {a.backbone}, batch {b}, CPU)",
                 ["configuration", "images/s", "vs defaults", "notes"], rows,
                 f"steps {a.warmup + 1}-{a.warmup + a.steps} of each, alternating in chunks of "
                 f"{a.chunk}; {threads} intra-op threads unless stated; a pair of views counts "
                 "as one image")


if __name__ == "__main__":
    main()
