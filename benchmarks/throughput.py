"""Training throughput, selfsup vs lightly, same backbone and batch, measured in one run.

Both libraries train the same small-stem ResNet (1 channel, 28 px Fashion-MNIST). selfsup runs
its defaults (bf16 autocast, channels_last, batched kornia views in the main process, its
recipe's 0.72-side training crops) and, for honesty about that last lever, once more with
full-size 28 px crops. lightly runs its documented recipe: fp32, per-sample torchvision
transforms in a DataLoader, with the best of the ``--workers`` settings. After ``--warmup``
steps each, the contenders alternate in chunks of ``--chunk`` steps (A B C A B C ...) so drift
of the machine hits all of them alike. MFU divides the achieved FLOP/s of a step (counted by
torch.utils.flop_counter) by the peak of that contender's precision, measured in the same run
(training_step.matmul_peak: the best sustained matmul over sizes and libraries).

    python benchmarks/throughput.py                          # CPU, with lightly
    python benchmarks/throughput.py --device cuda --no-lightly
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402
from training_step import (  # noqa: E402
    PREFETCH,
    endless,
    fashion_mnist_loader,
    lightly_step,
    peaks,
    selfsup_step,
    step_flops,
    timed_steps,
)


def best_lightly_workers(method: str, backbone: str, device, batch: int, workers: list[int],
                         trial_steps: int) -> tuple[int, dict]:
    """lightly's loader is per-sample PIL work: pick its fastest worker count here."""
    rates = {}
    for w in workers:
        step, transform = lightly_step(method, backbone, device)
        batches = endless(fashion_mnist_loader(batch, w, transform))
        timed_steps(step, batches, 2, device)  # workers start, caches fill
        rates[w] = batch * trial_steps / timed_steps(step, batches, trial_steps, device)
        print(f"  lightly {method} num_workers={w}: {rates[w]:.1f} images/s", flush=True)
    return max(rates, key=rates.get), rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="simclr,barlow_twins")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=25, help="timed steps per contender")
    p.add_argument("--chunk", type=int, default=5, help="steps per turn when alternating")
    p.add_argument("--workers", default="0,1,2", help="lightly DataLoader workers to try")
    p.add_argument("--trial-steps", type=int, default=2)
    p.add_argument("--no-lightly", action="store_true")
    p.add_argument("--no-record", action="store_true", help="print only, no RESULTS.md row")
    a = p.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    peak = peaks(device)  # each contender's MFU is against the peak of its own precision
    rows, records = [], []
    for method in a.methods.split(","):
        contenders = {
            "selfsup (defaults)": (selfsup_step(method, a.backbone, device),
                                   endless(fashion_mnist_loader(a.batch_size)), "bf16", 0),
            "selfsup, 28 px crops": (selfsup_step(method, a.backbone, device,
                                                  views={"crop_ratio": 1.0}),
                                     endless(fashion_mnist_loader(a.batch_size)), "bf16", 0),
        }
        if not a.no_lightly:
            w, trials = best_lightly_workers(method, a.backbone, device, a.batch_size,
                                             [int(x) for x in a.workers.split(",")],
                                             a.trial_steps)
            step, transform = lightly_step(method, a.backbone, device)
            contenders[f"lightly 1.6 (num_workers={w})"] = (
                step, endless(fashion_mnist_loader(a.batch_size, w, transform)), "fp32", w)
        seconds = dict.fromkeys(contenders, 0.0)
        for step, batches, _, _ in contenders.values():
            timed_steps(step, batches, a.warmup, device)
        done = 0
        while done < a.steps:
            n = min(a.chunk, a.steps - done)
            for name, (step, batches, _, workers) in contenders.items():
                # batches the workers prefetched during the others' turns would be free here
                timed_steps(step, batches, PREFETCH * workers, device)
                seconds[name] += timed_steps(step, batches, n, device)
            done += n
        lightly_rate = None
        for name, (step, batches, precision, _) in contenders.items():
            rate = a.batch_size * a.steps / seconds[name]
            if name.startswith("lightly"):
                lightly_rate = rate
            flops = step_flops(step, next(batches))
            achieved = flops * a.steps / seconds[name]
            records.append({"method": method, "contender": name, "images_per_s": rate,
                            "flops_per_step": flops, "achieved_flops": achieved,
                            "precision": precision, "device": str(device),
                            "peak_flops": peak[precision].flops if precision in peak else None,
                            "peak": str(peak.get(precision, "not measured"))})
            print(f"{method:13s} {name:32s} {rate:8.1f} images/s  "
                  f"{achieved / 1e12:.3f} TFLOP/s", flush=True)
        for rec in records[-len(contenders):]:
            ratio = (f"{rec['images_per_s'] / lightly_rate:.2f}x" if lightly_rate else "n/a")
            rows.append([method, rec["contender"], rec["precision"],
                         f"{rec['images_per_s']:.1f}", ratio,
                         f"{rec['flops_per_step'] / 1e9:.0f}",
                         f"{rec['achieved_flops'] / 1e12:.3f}",
                         f"{100 * rec['achieved_flops'] / rec['peak_flops']:.1f}%"
                         if rec["peak_flops"] else "n/a"])
    save_json(f"throughput-{device.type}", records)
    if a.no_record:
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    append_table(
        f"Throughput, selfsup vs lightly ({name}, {a.backbone} small stem, 28 px, 1 channel, "
        f"batch {a.batch_size})",
        ["method", "contender", "precision", "images/s", "vs lightly", "GFLOP/step",
         "achieved TFLOP/s", "MFU (of its precision's peak)"], rows,
        f"steps {a.warmup + 1}-{a.warmup + a.steps} of each, alternating in chunks of {a.chunk}; "
        "MFU against the peak of the row's precision, measured in the same run as the best "
        f"sustained square matmul over sizes and libraries: {'; '.join(map(str, peak.values()))}; "
        "a pair of views counts as one image; GFLOP/step counts forward and backward "
        "(torch.utils.flop_counter)")


if __name__ == "__main__":
    main()
