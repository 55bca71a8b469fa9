"""Model FLOP utilization of selfsup's default training step.

FLOPs per step (forward and backward) are counted by torch.utils.flop_counter; the achieved
FLOP/s over ``--steps`` timed steps is divided by the peak of the step's own precision, measured
in the same run on the same device: the best sustained rate of square matmuls swept over sizes
and over the libraries a step of that precision uses (training_step.matmul_peak). Runs unchanged
on a CUDA GPU. benchmarks/isa_peak.c measures the CPU's instruction-throughput ceiling beside it.

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
from results_md import save_json, write_table  # noqa: E402
from training_step import (  # noqa: E402
    CPU_SIZES,
    CUDA_SIZES,
    endless,
    fashion_mnist_loader,
    peaks,
    selfsup_step,
    step_flops,
    timed_steps,
)

from selfsup.backbones import CPU_DEFAULT  # noqa: E402


def measure(a: argparse.Namespace, device: torch.device, batch: int, bf16: bool) -> dict:
    """images/s, FLOPs per step and achieved FLOP/s of one configuration."""
    torch.manual_seed(0)
    step = selfsup_step(a.method, a.backbone, device, bf16=bf16)
    batches = endless(fashion_mnist_loader(batch))
    timed_steps(step, batches, a.warmup, device)
    seconds = timed_steps(step, batches, a.steps, device)
    flops = step_flops(step, next(batches))
    return {"batch": batch, "precision": "bf16" if bf16 else "fp32",
            "images_per_s": batch * a.steps / seconds, "flops_per_step": flops,
            "achieved_flops": flops * a.steps / seconds}


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
    peak = peaks(device)
    rows, records = [], []
    for batch in a.batch_size:
        for bf16 in (True, False) if "bf16" in peak else (False,):
            rec = measure(a, device, batch, bf16)
            mfu = rec["achieved_flops"] / peak[rec["precision"]].flops
            records.append({**rec, "mfu": mfu, "peak_flops": peak[rec["precision"]].flops,
                            "peak": str(peak[rec["precision"]])})
            rows.append([batch, rec["precision"], f"{rec['images_per_s']:.0f}",
                         f"{rec['flops_per_step'] / 1e9:.1f}",
                         f"{rec['achieved_flops'] / 1e12:.3f}", f"{100 * mfu:.1f}%"])
            print(rows[-1], flush=True)
    save_json(f"mfu-{device.type}", records)
    if a.no_record:
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    sizes = CUDA_SIZES if device.type == "cuda" else CPU_SIZES
    step = ("the default step" if (a.method, a.backbone) == ("simclr", CPU_DEFAULT)
            else "a training step")
    # one section per study: a rerun replaces its table instead of adding a second one
    write_table(
        f"MFU of {step} ({name}: {a.method}, {a.backbone}, 28 px Fashion-MNIST)",
        ["batch", "precision", "images/s", "GFLOP/step", "achieved TFLOP/s",
         "MFU (of its precision's peak)"], rows,
        "MFU against the peak of the row's precision, measured in the same run as the best "
        f"sustained square matmul of sides {', '.join(map(str, sizes))} in each library a "
        f"step of that precision uses: {'; '.join(map(str, peak.values()))}; steps {a.warmup + 1}-"
        f"{a.warmup + a.steps}; views, loss and optimizer included in the time, FLOPs counted "
        "forward + backward by torch.utils.flop_counter (zero-padding taps included)")


if __name__ == "__main__":
    main()
