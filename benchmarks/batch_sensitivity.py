"""Is DCL less sensitive to batch size than NT-Xent? (Yeh et al. 2022's small-batch claim.)

Pretrains SimCLR (NT-Xent) and DCL with everything else equal, at each batch size and seed, for
the same fixed time budget, then scores each encoder with kNN (and linear if asked). Runs go one
at a time; the table goes to RESULTS.md with the spread (best minus worst batch) per method.
Each result is kept in ``runs/batch-sensitivity/<data>-<budget>/`` and reused, so the seeds can
be run over several sittings.

Example (the run behind RESULTS.md's table; about 2 x 3 x budget x seeds of wall time):
    python benchmarks/batch_sensitivity.py --budget 3m --batch 32 --batch 64 --batch 256 \
        --seed 0 --seed 1 --seed 2
Smoke test at a tiny size:
    python benchmarks/batch_sensitivity.py --data digits --budget 5s --batch 16 --batch 32 \
        --no-record
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import selfsup

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, cached, mean_std, save_json  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["simclr", "dcl"],
                   help="methods to compare (default: simclr = NT-Xent, dcl)")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--budget", default="3m", help="time budget per run, e.g. 3m, 90s")
    p.add_argument("--batch", type=int, action="append", help="repeat; default 32, 64, 256")
    p.add_argument("--seed", type=int, action="append", help="repeat; default 0")
    p.add_argument("--protocols", default="knn", help="comma-separated, e.g. knn,linear")
    p.add_argument("--runs", default="runs/batch-sensitivity", help="where runs are written")
    p.add_argument("--keep-runs", action="store_true")
    p.add_argument("--no-record", action="store_true",
                   help="print only; do not append to RESULTS.md or benchmarks/out")
    a = p.parse_args(argv)
    batches, seeds = a.batch or [32, 64, 256], a.seed or [0]
    protocols = a.protocols.split(",")
    # each (method, batch, seed) result is kept here and reused by the same command later
    cache = Path(a.runs) / f"{Path(a.data).stem}-{a.budget}"
    records = []
    for method in a.methods:
        for batch in batches:
            for seed in seeds:
                name = f"{method}-b{batch}-s{seed}-{'+'.join(protocols)}.json"
                records.append(cached(cache / name, lambda method=method, batch=batch, seed=seed:
                                      measure(method, batch, seed, a, protocols)))
                print(records[-1], flush=True)
    rows = table(records, a.methods, batches, protocols)
    for row in rows:
        print(" | ".join(str(c) for c in row))
    if not a.no_record:
        save_json("batch-sensitivity", records)
        append_table(
            f"Batch-size sensitivity: {' vs '.join(a.methods)} on {a.data}, {a.budget} per run",
            ["method", *[f"{name} @ batch {b}" for name in protocols for b in batches],
             *[f"{name} spread" for name in protocols], "seeds"], rows,
            "top-1 %, mean ± sd over seeds; spread = best minus worst batch size's mean; "
            "lr scaled linearly with batch (the library's rule), same recipe for both methods")
    return records


def measure(method: str, batch: int, seed: int, a: argparse.Namespace,
            protocols: list[str]) -> dict:
    """Pretrain one (method, batch, seed) for the budget and score its encoder."""
    run_dir = Path(a.runs) / f"{method}-b{batch}-s{seed}-{int(time.time())}"
    t0 = time.perf_counter()
    run = selfsup.pretrain(method, a.data, time_budget=a.budget, batch_size=batch, seed=seed,
                           run_dir=str(run_dir), evaluate_after=False)
    scores = selfsup.evaluate(run.dir, protocols=protocols)
    if not a.keep_runs:
        shutil.rmtree(run_dir, ignore_errors=True)
    return {"method": method, "batch": batch, "seed": seed, "steps": run.steps,
            "wall_s": time.perf_counter() - t0,
            **{f"{name}_top1": scores[f"{name}_top1"]
               for name in protocols if f"{name}_top1" in scores}}


def table(records: list[dict], methods: list[str], batches: list[int],
          protocols: list[str]) -> list[list]:
    """One row per method: mean ± sd per protocol and batch, then each protocol's spread."""
    rows = []
    for method in methods:
        cells, spreads = [], []
        for name in protocols:
            means = []
            for batch in batches:
                xs = [100 * r[f"{name}_top1"] for r in records
                      if r["method"] == method and r["batch"] == batch]
                means.append(statistics.mean(xs))
                cells.append(mean_std(xs))
            spreads.append(f"{max(means) - min(means):.2f}")
        seeds = len({r["seed"] for r in records if r["method"] == method})
        rows.append([method, *cells, *spreads, seeds])
    return rows


if __name__ == "__main__":
    main()
