"""Continual pretraining on a stream of two stages, with the infinite and the repeated-cosine
schedule: the forgetting figure of "Beyond Cosine Decay" (Singh et al. 2025) on a small scale.

Stage 1 pretrains on the first classes, stage 2 continues with ``--init-from`` on the others.
After each stage a kNN probe (k=200, T=0.1) scores the encoder on each half of the classes
separately (train and test images of that half only), so forgetting shows as the first half's
score falling in stage 2.

Example (the table in RESULTS.md):
    python benchmarks/continual_stream.py --data fashion-mnist --epochs 10
A quick check (seconds, nothing appended):
    python benchmarks/continual_stream.py --data digits --epochs 1 --batch-size 64 --no-append
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import selfsup
from selfsup.data import load_source
from selfsup.data.classes import select_classes
from selfsup.evaluate import evaluate_encoder

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, save_json  # noqa: E402

SCHEDULES = ("infinite", "repeated-cosine")


def knn_on(encoder, data: str, classes: str) -> float:
    pre = encoder.preprocessing
    source = select_classes(load_source(data, channels=pre.channels, image_size=pre.input_size),
                            classes)
    return evaluate_encoder(encoder, source, ["knn"])["knn_top1"]


def run_stream(method: str, data: str, stages: list[str], schedule: str, out: Path,
               **options) -> list[dict]:
    rows, previous = [], None
    for i, classes in enumerate(stages, 1):
        run_dir = out / f"{schedule}-stage{i}"
        t0 = time.perf_counter()
        run = selfsup.pretrain(method, data, classes=classes, schedule=schedule,
                               init_from=previous, run_dir=str(run_dir), evaluate_after=False,
                               **options)
        encoder = selfsup.load(run_dir)
        row = {"schedule": schedule, "stage": i, "trained_on": classes, "steps": run.steps,
               "minutes": round((time.perf_counter() - t0) / 60, 2)}
        for c in stages:
            row[f"knn_{c}"] = knn_on(encoder, data, c)
        rows.append(row)
        previous = str(run_dir)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--stages", default="0-4,5-9", help="class ranges, one per stage")
    p.add_argument("--method", default="simclr")
    p.add_argument("--epochs", type=int, default=10, help="epochs per stage")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="where the runs go (default: a temporary folder)")
    p.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md")
    a = p.parse_args(argv)
    stages = a.stages.split(",")
    out = Path(a.out or tempfile.mkdtemp(prefix="continual-"))
    rows = []
    for schedule in SCHEDULES:
        rows += run_stream(a.method, a.data, stages, schedule, out, epochs=a.epochs,
                           batch_size=a.batch_size, seed=a.seed)
    header = ["schedule", "after stage", "trained on", *[f"kNN classes {c}" for c in stages],
              "steps", "minutes"]
    table = [[r["schedule"], r["stage"], r["trained_on"],
              *[f"{100 * r[f'knn_{c}']:.2f}%" for c in stages], r["steps"], r["minutes"]]
             for r in rows]
    for line in [header, *table]:
        print(" | ".join(str(c) for c in line))
    if not a.no_append:
        save_json("continual_stream", rows)
        append_table(f"Continual stream: {a.data} classes {' then '.join(stages)}, "
                     f"{a.method}, {a.epochs} epochs a stage", header, table,
                     notes="kNN (k=200, T=0.1) on each half's own train/test images; stage 2 "
                     "starts from stage 1 with --init-from (infinite: pre-anneal weights, "
                     "constant lr; repeated-cosine: final weights, warmup + cosine again)")
    return rows


if __name__ == "__main__":
    main()
