"""Training throughput of each backbone on 28 px, 1-channel inputs: one SimCLR step
(views, backbone on both views, projector, NT-Xent, backward, LARS step), the way
`selfsup pretrain` runs it. This is how the CPU default backbone was chosen.

    python benchmarks/backbone_speed.py --steps 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402

from selfsup.backbones import build_backbone  # noqa: E402
from selfsup.data.batch import as_batch  # noqa: E402
from selfsup.data.spec import DataSpec  # noqa: E402
from selfsup.methods import get_method  # noqa: E402
from selfsup.train.optim import build_optimizer  # noqa: E402
from selfsup.views import TwoCropViews  # noqa: E402


def pairs_per_second(backbone: str, batch: int, steps: int, bf16: bool, channels_last: bool
                     ) -> float:
    torch.manual_seed(0)
    net = build_backbone(backbone, channels=1, input_size=28, mean=(0.286,), std=(0.353,))
    if not channels_last:
        net.channels_last = False
        net = net.to(memory_format=torch.contiguous_format)
    data = DataSpec("image", (1, 28, 28), 60_000, 10)
    method = get_method("simclr")(net, TwoCropViews(net.preprocessing), data)
    opt = build_optimizer("lars", method, 0.3, 1e-6)
    images = torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8)
    times = []
    for _ in range(steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = method.training_loss(as_batch(images))["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return batch / (sum(times[2:]) / steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=256)
    a = p.parse_args()
    rows, rec = [], []
    for name in ["resnet10w32", "resnet10", "resnet18"]:
        for bf16, cl in [(True, True), (True, False), (False, True)]:
            ips = pairs_per_second(name, a.batch_size, a.steps, bf16, cl)
            dim = build_backbone(name, channels=1, input_size=28).dim
            rows.append([name, dim, "bf16" if bf16 else "fp32",
                         "channels_last" if cl else "NCHW", f"{ips:.0f}",
                         f"{60000 / ips:.0f}"])
            keys = ["backbone", "dim", "bf16", "channels_last", "images_per_s"]
            rec.append(dict(zip(keys, [name, dim, bf16, cl, ips], strict=True)))
            print(rows[-1], flush=True)
    save_json("backbone_speed", rec)
    append_table("Backbone throughput (SimCLR step, 28 px, 1 channel, batch 256)",
                 ["backbone", "feature dim", "precision", "layout", "images/s (pairs)",
                  "s per Fashion-MNIST epoch"], rows,
                 "a pair of views counts as one image; views, projector, loss and LARS included")


if __name__ == "__main__":
    main()
