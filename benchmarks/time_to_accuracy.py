"""Fashion-MNIST test kNN after the same wall-clock budget, selfsup vs lightly, several seeds.

Same backbone (the CPU default small-stem ResNet unless ``--backbone``), same batch, same kNN
protocol (selfsup.evaluate: cosine, k=200, T=0.1, 60k train / 10k test). selfsup runs
`selfsup.pretrain(time_budget=...)` with its defaults; lightly runs its documented SimCLR recipe
(SimCLRTransform, projection head 512-512-128, NT-Xent T=0.5, SGD lr 0.06, fp32) in a plain
loop with the best DataLoader worker count of benchmarks/throughput.py, stopped at the budget.
The runs go one after another (never two at once: 2 cores). Each (library, seed) result is kept
in ``runs/time-to-accuracy/<backbone>-<budget>-b<batch>/`` (``selfsup-s<seed>.json``,
``lightly-w<workers>-s<seed>.json``) and reused, so the seeds can be run over several sittings
with the same command and the table rebuilt whole.

    python benchmarks/time_to_accuracy.py --budget 10m --seeds 0 1 2
    python benchmarks/time_to_accuracy.py --budget 10m --seeds 0 1 2 --backbone resnet18
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, cached, mean_std, save_json  # noqa: E402
from training_step import endless, fashion_mnist_loader, lightly_step  # noqa: E402

import selfsup  # noqa: E402
from selfsup.backbones import CPU_DEFAULT  # noqa: E402
from selfsup.data import load_source  # noqa: E402
from selfsup.evaluate.suite import evaluate_encoder  # noqa: E402
from selfsup.train.config import parse_duration  # noqa: E402


def run_selfsup(seed: int, budget: str, backbone: str, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = selfsup.pretrain("simclr", "fashion-mnist", time_budget=budget, seed=seed,
                               backbone=backbone, batch_size=batch, run_dir=f"{tmp}/run",
                               progress=False)
    return {"knn_top1": run.eval["knn_top1"], "steps": run.steps}


def run_lightly(seed: int, seconds: float, backbone: str, batch: int, workers: int) -> dict:
    torch.manual_seed(seed)
    step, transform = lightly_step("simclr", backbone, torch.device("cpu"))
    batches = endless(fashion_mnist_loader(batch, workers, transform, seed=seed))
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step.run(next(batches))
        steps += 1
    encoder = step.model["backbone"].eval()
    scores = evaluate_encoder(encoder, load_source("fashion-mnist"), ("knn",))
    return {"knn_top1": scores["knn_top1"], "steps": steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", default="10m")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--backbone", default=CPU_DEFAULT)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--root", help="default: runs/time-to-accuracy/<backbone>-<budget>-b<batch>")
    p.add_argument("--lightly-workers", type=int, default=0,
                   help="lightly DataLoader workers (0 was its best for resnet10w32 here: "
                   "325 vs 316 vs 296 images/s for 0/1/2, benchmarks/throughput.py)")
    a = p.parse_args()
    seconds = parse_duration(a.budget)
    root = Path(a.root or f"runs/time-to-accuracy/{a.backbone}-{a.budget}-b{a.batch_size}")
    results: dict[str, list[dict]] = {"selfsup": [], "lightly": []}
    for seed in a.seeds:  # alternate the libraries so drift of the machine hits both
        results["selfsup"].append(cached(root / f"selfsup-s{seed}.json", lambda seed=seed:
                                         run_selfsup(seed, a.budget, a.backbone, a.batch_size)))
        print("selfsup", seed, results["selfsup"][-1], flush=True)
        results["lightly"].append(cached(root / f"lightly-w{a.lightly_workers}-s{seed}.json",
                                         lambda seed=seed: run_lightly(
                                             seed, seconds, a.backbone, a.batch_size,
                                             a.lightly_workers)))
        print("lightly", seed, results["lightly"][-1], flush=True)
    rows = []
    for lib, runs in results.items():
        accs = [100 * r["knn_top1"] for r in runs]
        rows.append([lib, len(accs), mean_std(accs),
                     ", ".join(f"{x:.2f}" for x in accs),
                     f"{statistics.mean(r['steps'] for r in runs):.0f}"])
    save_json("time_to_accuracy", results)
    append_table(f"Time to accuracy: Fashion-MNIST kNN after {a.budget} ({a.backbone}, batch "
                 f"{a.batch_size}, CPU)", ["library", "seeds", "kNN top-1 % (mean ± std)",
                                           "per seed", "steps (mean)"], rows,
                 "selfsup: `selfsup pretrain` defaults under --time-budget (its wall includes "
                 "start-up); lightly: its documented SimCLR recipe, fp32, "
                 f"num_workers={a.lightly_workers}; same kNN protocol for both")


if __name__ == "__main__":
    main()
