"""Does bf16 autocast learn the same encoder as fp32? kNN after the same number of epochs.

Speed work must keep numerics honest (issue 3): selfsup's default on this CPU is bf16 autocast
with fp32 master weights. This pretrains the default recipe at equal epochs (so equal steps and
equal data, not equal time) with ``--precision bf16`` and ``--precision 32`` for each seed, one
run at a time, and compares Fashion-MNIST test kNN (k=200, T=0.1): the gap between precisions
should sit within the seed-to-seed spread.

    python benchmarks/precision_parity.py --epochs 2 --seeds 0 1 2
A quick check (seconds, nothing appended):
    python benchmarks/precision_parity.py --data digits --epochs 1 --seeds 0 --no-append
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import selfsup

sys.path.insert(0, str(Path(__file__).parent))
from results_md import append_table, mean_std, save_json  # noqa: E402

PRECISIONS = ("bf16", "32")


def run_one(precision: str, seed: int, data: str, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = selfsup.pretrain("simclr", data, epochs=epochs, seed=seed, precision=precision,
                               eval_protocols=["knn"], run_dir=f"{tmp}/run", progress=False)
    return {"precision": precision, "seed": seed, "knn_top1": run.eval["knn_top1"],
            "steps": run.steps, "seconds": run.seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md alone")
    a = p.parse_args()
    runs = []
    for seed in a.seeds:  # alternate precisions so drift of the machine hits both
        for precision in PRECISIONS:
            runs.append(run_one(precision, seed, a.data, a.epochs))
            print(runs[-1], flush=True)
    rows = []
    for precision in PRECISIONS:
        mine = [r for r in runs if r["precision"] == precision]
        accs = [100 * r["knn_top1"] for r in mine]
        rows.append(["fp32" if precision == "32" else precision, len(mine), mean_std(accs),
                     ", ".join(f"{x:.2f}" for x in accs), mine[0]["steps"],
                     f"{statistics.mean(r['seconds'] for r in mine):.0f}"])
    pairs = zip(runs[::2], runs[1::2], strict=True)  # (bf16, fp32) of one seed
    gaps = [100 * (b["knn_top1"] - f["knn_top1"]) for b, f in pairs]
    rows.append(["bf16 − fp32 (paired by seed)", len(gaps), mean_std(gaps),
                 ", ".join(f"{g:+.2f}" for g in gaps), "", ""])
    print("\n".join(" | ".join(str(c) for c in row) for row in rows))
    save_json("precision_parity", runs)
    if a.no_append:
        return
    append_table(f"Precision parity: {a.data} kNN after {a.epochs} epochs, bf16 vs fp32 "
                 "(default SimCLR recipe, CPU)",
                 ["precision", "seeds", "kNN top-1 % (mean ± std)", "per seed", "steps",
                  "train s (mean)"], rows,
                 "equal epochs, so equal steps and data; bf16 = autocast with fp32 master "
                 "weights; one run at a time")


if __name__ == "__main__":
    main()
