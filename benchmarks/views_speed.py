"""The augmentation pipeline alone: pairs of views per second, selfsup vs lightly.

selfsup: `TwoCropViews` (kornia, batched, per-sample random parameters) on uint8 batches in the
main process, as `selfsup pretrain` runs it. lightly: its SimCLRTransform, per-sample PIL
work in DataLoader workers (the best of ``--workers``). Both make two views of every
Fashion-MNIST training image, with the same batch size; the contenders alternate.

    python benchmarks/views_speed.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402
from training_step import FMNIST_MEAN, FMNIST_STD, PREFETCH, endless, fashion_mnist_loader  # noqa: E402

from selfsup.backbones import build_backbone  # noqa: E402
from selfsup.methods import get_method  # noqa: E402
from selfsup.views import TwoCropViews, ViewConfig  # noqa: E402

SETTLE_S = 1.0  # long enough for lightly's workers to refill their prefetch queues


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches", type=int, default=20, help="timed batches per contender")
    p.add_argument("--chunk", type=int, default=5)
    p.add_argument("--workers", default="0,1,2")
    a = p.parse_args()
    from lightly.transforms import SimCLRTransform

    pre = build_backbone("resnet10w32", channels=1, input_size=28, mean=FMNIST_MEAN,
                         std=FMNIST_STD).preprocessing
    recipe = get_method("simclr").recipe.views.to_dict()
    views = {
        "selfsup TwoCropViews (recipe, 20 px crops)": TwoCropViews(pre, ViewConfig(**recipe)),
        "selfsup TwoCropViews (28 px crops)": TwoCropViews(
            pre, ViewConfig(**{**recipe, "crop_ratio": 1.0})),
    }
    contenders = {}
    for name, maker in views.items():
        batches = endless(fashion_mnist_loader(a.batch_size))
        contenders[name] = (batches, maker, 0)
    transform = SimCLRTransform(input_size=28, normalize={"mean": list(FMNIST_MEAN),
                                                          "std": list(FMNIST_STD)})
    for w in (int(x) for x in a.workers.split(",")):
        contenders[f"lightly SimCLRTransform (num_workers={w})"] = (
            endless(fashion_mnist_loader(a.batch_size, w, transform)), None, w)

    def run(batches, maker, n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            x = next(batches)
            if maker is not None:
                with torch.no_grad():
                    maker(x)
        return time.perf_counter() - t

    seconds = dict.fromkeys(contenders, 0.0)
    for batches, maker, _ in contenders.values():
        run(batches, maker, 2)  # workers start
    done = 0
    while done < a.batches:
        n = min(a.chunk, a.batches - done)
        for name, (batches, maker, workers) in contenders.items():
            # workers still refilling their queues would steal this turn's cores...
            time.sleep(SETTLE_S)
            # ...and the batches they prefetched during the others' turns would be free here
            run(batches, maker, PREFETCH * workers)
            seconds[name] += run(batches, maker, n)
        done += n
    lightly_best = max(a.batch_size * a.batches / s for k, s in seconds.items()
                       if k.startswith("lightly"))
    rows, rec = [], []
    for name, s in seconds.items():
        rate = a.batch_size * a.batches / s
        rows.append([name, f"{rate:,.0f}", f"{rate / lightly_best:.1f}x"])
        rec.append({"contender": name, "pairs_per_s": rate})
        print(rows[-1], flush=True)
    save_json("views_speed", rec)
    append_table(f"Views alone: pairs of views per second (batch {a.batch_size}, 28 px "
                 "Fashion-MNIST, CPU)", ["pipeline", "pairs/s", "vs best lightly"], rows,
                 "crop, flip, colour jitter (and lightly's grayscale and blur), normalization; "
                 "lightly's per-sample PIL transforms run in DataLoader workers")


if __name__ == "__main__":
    main()
