"""Model FLOP utilization of selfsup's default training step.

FLOPs per step (forward and backward) are counted by torch.utils.flop_counter; the achieved
FLOP/s over ``--steps`` timed steps is divided by the bf16 and fp32 matmul peaks measured in the
same run on the same device. Runs unchanged on a CUDA GPU.

    python benchmarks/mfu.py
    python benchmarks/mfu.py --method mae --backbone vit_tiny --steps 10
    python benchmarks/mfu.py --device cuda --batch-size 256 1024

bf16 rows are measured only where bf16 autocast is the default (selfsup.hardware.has_bf16):
on a CPU without bf16 instructions it runs an order of magnitude slower than fp32 and no run
would use it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402
from training_step import (  # noqa: E402
    endless,
    fashion_mnist_loader,
    matmul_peak,
    selfsup_step,
    step_flops,
    timed_steps,
)

from selfsup.backbones import CPU_DEFAULT  # noqa: E402
from selfsup.hardware import has_bf16  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="simclr")
    p.add_argument("--backbone", default=CPU_DEFAULT)
    p.add_argument("--batch-size", type=int, nargs="+", default=[256])
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    device = torch.device(a.device)
    # a CPU without bf16 instructions emulates it (minutes for one 2048^2 matmul): no peak there
    bf16_ok = device.type == "cuda" or has_bf16()
    peak_bf16 = matmul_peak(device, torch.bfloat16) if bf16_ok else float("nan")
    peak_fp32 = matmul_peak(device, torch.float32)
    print(f"matmul peak: bf16 {peak_bf16 / 1e12:.2f} TFLOP/s, fp32 {peak_fp32 / 1e12:.2f}",
          flush=True)
    rows, records = [], []
    for batch in a.batch_size:
        for bf16 in (True, False) if bf16_ok else (False,):
            torch.manual_seed(0)
            step = selfsup_step(a.method, a.backbone, device, bf16=bf16)
            batches = endless(fashion_mnist_loader(batch))
            timed_steps(step, batches, a.warmup, device)
            seconds = timed_steps(step, batches, a.steps, device)
            flops = step_flops(step, next(batches))
            achieved = flops * a.steps / seconds
            rate = batch * a.steps / seconds
            precision = "bf16" if bf16 else "fp32"
            records.append({"batch": batch, "precision": precision, "images_per_s": rate,
                            "flops_per_step": flops, "achieved_flops": achieved,
                            "peak_bf16": peak_bf16, "peak_fp32": peak_fp32})
            rows.append([batch, precision, f"{rate:.0f}", f"{flops / 1e9:.1f}",
                         f"{achieved / 1e12:.3f}",
                         f"{100 * achieved / peak_bf16:.1f}%" if bf16_ok else "n/a",
                         f"{100 * achieved / peak_fp32:.1f}%"])
            print(rows[-1], flush=True)
    save_json(f"mfu-{device.type}", records)
    if a.no_record:
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    append_table(
        f"MFU of a training step ({name}: {a.method}, {a.backbone}, 28 px Fashion-MNIST)",
        ["batch", "precision", "images/s", "GFLOP/step", "achieved TFLOP/s",
         "MFU vs bf16 peak", "MFU vs fp32 peak"], rows,
        f"measured matmul peaks in the same run: bf16 {peak_bf16 / 1e12:.2f} TFLOP/s, fp32 "
        f"{peak_fp32 / 1e12:.2f} TFLOP/s; steps {a.warmup + 1}-{a.warmup + a.steps}; "
        "views, loss and optimizer included in the time, FLOPs counted forward + backward")


if __name__ == "__main__":
    main()
